import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import type pino from 'pino';
import { ANONYMOUS, type RequestContext } from '../context.js';
import type { OperationName } from '../operations.js';

/** Accepts a client-sent request id only when it is short and plain, so logs cannot be forged through it. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** Returns the request id: the client's X-Request-Id when it is well-formed, else a new UUID. */
export function requestIdOf(request: { headers: Record<string, string | string[] | undefined> }): string {
  const sent = request.headers['x-request-id'];
  return typeof sent === 'string' && REQUEST_ID_PATTERN.test(sent) ? sent : randomUUID();
}

/**
 * Returns a header value as UTF-8 text. Node reads header bytes as Latin-1,
 * so a value that a client sent as UTF-8 is decoded again when it is valid
 * UTF-8, and kept as read otherwise.
 */
function utf8Header(value: string): string {
  if (!/[\u0080-\u00ff]/.test(value)) return value;
  const decoded = Buffer.from(value, 'latin1').toString('utf8');
  return decoded.includes('\ufffd') ? value : decoded;
}

/** Returns the context of a request; the logging middleware creates it before any route runs. */
export function contextOf(request: Request, response: Response): RequestContext {
  const existing = response.locals.context as RequestContext | undefined;
  if (existing) return existing;
  const logger = (request as Request & { log: pino.Logger }).log;
  const context: RequestContext = {
    requestId: String(request.id ?? requestIdOf(request)),
    identity: ANONYMOUS,
    principal: null,
    clientAddress: request.ip ?? '',
    userAgent: utf8Header(request.get('user-agent') ?? ''),
    logger,
  };
  response.locals.context = context;
  return context;
}

/** Names the operation of a request for its log line and adds route facts to later log lines. */
export function describeRequest(response: Response, operation: OperationName, fields: Record<string, string> = {}): void {
  response.locals.operation = operation;
  response.locals.logFields = { ...(response.locals.logFields as Record<string, string> | undefined), ...fields };
}
