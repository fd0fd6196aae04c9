/**
 * Every error code Portcullis sends on /v2, declared once with its HTTP
 * status and default message. Codes and messages follow the OCI Distribution
 * Specification v1.1 error table; RANGE_INVALID, TAG_INVALID, PAGINATION_NUMBER_INVALID,
 * UNAVAILABLE and UNKNOWN come from the Docker Registry HTTP API v2, which OCI clients also know.
 */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  RANGE_INVALID: { status: 416, message: 'invalid content range' },
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * A registry error raised by domain code. It carries the OCI code and the
 * facts of the case; the HTTP layer alone turns it into a status and body.
 * `status` overrides the code's usual status where the specification requires
 * another one (413 for an oversized manifest, 409 for a conflict).
 */
export class RegistryError extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly detail?: unknown,
    readonly status?: number,
    /** Response headers the error needs, such as a WWW-Authenticate challenge or Retry-After. */
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'RegistryError';
  }

  get httpStatus(): number {
    return this.status ?? ERROR_CODES[this.code].status;
  }
}

/** Returns whether a value is a RegistryError with the given code. */
export function isRegistryError(error: unknown, code?: ErrorCode): error is RegistryError {
  return error instanceof RegistryError && (code === undefined || error.code === code);
}
