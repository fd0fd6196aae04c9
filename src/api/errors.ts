import { AccountConflictError, AccountNotFoundError, InvalidAccountInputError } from '../auth/account-errors.js';
import { AuthenticationError } from '../auth/authenticator.js';
import { TooManyLoginFailuresError } from '../auth/login-limiter.js';
import { isRegistryError } from '../errors.js';

/** Every error code of the management API, declared once with its HTTP status and default message. */
export const API_ERROR_CODES = {
  INVALID_REQUEST: { status: 400, message: 'the request is invalid' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  FORBIDDEN: { status: 403, message: 'the caller may not do this' },
  NOT_FOUND: { status: 404, message: 'not found' },
  NOT_ACCEPTABLE: { status: 406, message: 'none of the media types in Accept can be returned' },
  CONFLICT: { status: 409, message: 'the request conflicts with the current state' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'the request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'the request body has an unsupported encoding or character set' },
  TOO_MANY_REQUESTS: { status: 429, message: 'too many requests' },
  INTERNAL_ERROR: { status: 500, message: 'internal error' },
  UNAVAILABLE: { status: 503, message: 'the service is unavailable; retry later' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ApiErrorCode = keyof typeof API_ERROR_CODES;

/** The challenge sent with every 401 of the management API. */
export const BASIC_CHALLENGE = 'Basic realm="Portcullis"';

/** Paths of the management API start with this prefix; errors under it get the API envelope. */
const MANAGEMENT_API_PREFIX = '/api/';

/** Body of every management API error. */
export interface ApiErrorBody {
  error: { code: ApiErrorCode; message: string; details: unknown };
}

/** A management API error: a code, a message for people and details for programs. */
export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string = API_ERROR_CODES[code].message,
    readonly details: unknown = null,
    /** Response headers the error needs, such as WWW-Authenticate or Retry-After. */
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get status(): number {
    return API_ERROR_CODES[this.code].status;
  }

  get body(): ApiErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

/** Returns whether a request path (with or without a query string) belongs to the management API. */
export function isManagementApiPath(url: string): boolean {
  const path = url.split('?', 1)[0] as string;
  return path === '/api' || path.startsWith(MANAGEMENT_API_PREFIX);
}

interface BodyParserError {
  status: number;
  type: string;
}

function isBodyParserError(error: unknown): error is BodyParserError {
  return typeof error === 'object' && error !== null && typeof (error as { status?: unknown }).status === 'number' && typeof (error as { type?: unknown }).type === 'string';
}

/**
 * Body parser errors get fixed messages, because the parser's own message can
 * quote part of the body, and the body may hold a password.
 */
function bodyParserApiError(error: BodyParserError): ApiError | null {
  if (error.status === 413) return new ApiError('PAYLOAD_TOO_LARGE', 'the request body is larger than 64 KiB');
  if (error.status === 415) return new ApiError('UNSUPPORTED_MEDIA_TYPE', 'the request body must be JSON in UTF-8 without content encoding');
  if (error.type === 'entity.parse.failed') return new ApiError('INVALID_REQUEST', 'the request body is not valid JSON');
  if (error.status >= 400 && error.status < 500) return new ApiError('INVALID_REQUEST', 'the request body could not be read');
  return null;
}

/**
 * Translates an error into an ApiError: domain errors of account management,
 * authentication failures and body parser errors. Returns null for anything
 * else, which the caller treats as an unexpected failure.
 */
export function toApiError(error: unknown): ApiError | null {
  if (error instanceof ApiError) return error;
  if (error instanceof InvalidAccountInputError) return new ApiError('INVALID_REQUEST', error.message, { problems: error.problems });
  if (error instanceof AccountNotFoundError) return new ApiError('NOT_FOUND', error.message, { resource: error.resource, key: error.key });
  if (error instanceof AccountConflictError) return new ApiError('CONFLICT', error.message, { resource: error.resource, key: error.key, reason: error.reason });
  if (error instanceof AuthenticationError) return new ApiError('UNAUTHORIZED', error.message, { reason: error.reason }, { 'WWW-Authenticate': BASIC_CHALLENGE });
  if (error instanceof TooManyLoginFailuresError) {
    return new ApiError('TOO_MANY_REQUESTS', error.message, { retryAfterSeconds: error.retryAfterSeconds }, { 'Retry-After': String(error.retryAfterSeconds) });
  }
  if (isBodyParserError(error)) return bodyParserApiError(error);
  if (isRegistryError(error, 'UNAVAILABLE')) return new ApiError('UNAVAILABLE', error.message);
  return null;
}
