import type { NextFunction, Request, Response } from 'express';
import { ERROR_CODES, RegistryError } from '../errors.js';
import { contextOf } from './request-context.js';

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

/**
 * The one place that maps errors to HTTP. Registry errors keep their code;
 * body-parser errors become client errors; anything else is logged with its
 * stack and answered 500 with a generic message, so no storage key, path,
 * stack or SQL reaches the client.
 */
export function errorHandler(error: unknown, request: Request, response: Response, _next: NextFunction): void {
  const context = contextOf(request, response);
  let rendered: { status: number; body: OciErrorBody };
  if (error instanceof RegistryError) {
    rendered = renderRegistryError(error);
  } else if (isBodyParserError(error) && error.status >= 400 && error.status < 500) {
    rendered = { status: error.status, body: { errors: [{ code: error.status === 413 ? 'SIZE_INVALID' : 'UNSUPPORTED', message: error.message, detail: null }] } };
  } else {
    context.logger.error({ err: error }, 'request failed with an unexpected error');
    rendered = { status: 500, body: { errors: [{ code: 'UNKNOWN', message: `${ERROR_CODES.UNKNOWN.message}: the failure was logged with request id ${context.requestId}`, detail: null }] } };
  }
  response.locals.errorCode = rendered.body.errors[0]?.code;

  if (response.headersSent) {
    // The status line is gone; the only signal left is to cut the connection.
    context.logger.warn({ err: error }, 'response failed after its headers were sent');
    response.destroy();
    return;
  }
  response.removeHeader('Content-Length');
  response.removeHeader('Content-Type');
  response.status(rendered.status).json(request.method === 'HEAD' ? undefined : rendered.body);
}
