import type { NextFunction, Request, Response } from 'express';
import { ERROR_CODES, RegistryError } from '../errors.js';
import { ApiError, isManagementApiPath, toApiError, type ApiErrorBody } from '../api/errors.js';
import type { RequestContext } from '../context.js';
import { contextOf } from './request-context.js';
import { StorageUnavailableError } from '../storage/blob-store.js';

/** Body of every /v2 error, as the OCI Distribution Specification defines it. */
export interface OciErrorBody {
  errors: Array<{ code: string; message: string; detail: unknown }>;
}

/** Turns a RegistryError into its HTTP status and OCI body. */
export function renderRegistryError(error: RegistryError): { status: number; body: OciErrorBody } {
  return { status: error.httpStatus, body: { errors: [{ code: error.code, message: error.message, detail: error.detail ?? null }] } };
}

function isBodyParserError(error: unknown): error is { status: number; type: string; message: string } {
  return typeof error === 'object' && error !== null && typeof (error as { status?: unknown }).status === 'number' && typeof (error as { type?: unknown }).type === 'string';
}

/** An error turned into what the response carries. */
interface RenderedError {
  status: number;
  body: OciErrorBody | ApiErrorBody;
  code: string;
  headers?: Readonly<Record<string, string>>;
}

function renderRegistryFailure(error: unknown, context: RequestContext): RenderedError {
  let rendered: { status: number; body: OciErrorBody };
  if (error instanceof RegistryError) {
    rendered = renderRegistryError(error);
  } else if (isBodyParserError(error) && error.status >= 400 && error.status < 500) {
    rendered = { status: error.status, body: { errors: [{ code: error.status === 413 ? 'SIZE_INVALID' : 'UNSUPPORTED', message: error.message, detail: null }] } };
  } else if (error instanceof StorageUnavailableError) {
    context.logger.error({ err: error }, 'blob storage is unavailable');
    rendered = { status: 503, body: { errors: [{ code: 'UNAVAILABLE', message: 'blob storage is unavailable: retry later', detail: null }] } };
  } else {
    context.logger.error({ err: error }, 'request failed with an unexpected error');
    rendered = { status: 500, body: { errors: [{ code: 'UNKNOWN', message: `${ERROR_CODES.UNKNOWN.message}: the failure was logged with request id ${context.requestId}`, detail: null }] } };
  }
  return { ...rendered, code: rendered.body.errors[0]?.code ?? 'UNKNOWN', ...(error instanceof RegistryError && error.headers ? { headers: error.headers } : {}) };
}

function renderManagementApiFailure(error: unknown, context: RequestContext): RenderedError {
  let apiError = toApiError(error);
  if (apiError === null) {
    context.logger.error({ err: error }, 'request failed with an unexpected error');
    apiError = new ApiError('INTERNAL_ERROR', `internal error: the failure was logged with request id ${context.requestId}`);
  }
  return { status: apiError.status, body: apiError.body, code: apiError.code, ...(apiError.headers ? { headers: apiError.headers } : {}) };
}

/**
 * Maps errors to HTTP responses, as the only place that does. Requests
 * under /api/ get the management API envelope, and every other request gets
 * the OCI error body. Registry and API errors keep their code, and
 * body-parser errors become client errors. Anything else is logged with its
 * stack and gets a 500 response with a generic message, so no storage key,
 * path, stack or SQL reaches the client.
 */
export function errorHandler(error: unknown, request: Request, response: Response, _next: NextFunction): void {
  const context = contextOf(request, response);
  const rendered = isManagementApiPath(request.originalUrl) ? renderManagementApiFailure(error, context) : renderRegistryFailure(error, context);
  response.locals.errorCode = rendered.code;

  if (response.headersSent) {
    // The status line is gone; the only signal left is to cut the connection.
    context.logger.warn({ err: error }, 'response failed after its headers were sent');
    response.destroy();
    return;
  }
  if (rendered.headers) response.set(rendered.headers);
  response.removeHeader('Content-Length');
  response.removeHeader('Content-Type');
  response.status(rendered.status).json(request.method === 'HEAD' ? undefined : rendered.body);
}
