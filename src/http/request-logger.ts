import type { IncomingMessage, ServerResponse } from 'node:http';
import { pinoHttp, type HttpLogger } from 'pino-http';
import type pino from 'pino';
import { requestIdOf } from './request-context.js';

type LocalsResponse = ServerResponse & { locals?: Record<string, unknown> };

/** Logged URLs longer than this many characters are cut. */
const MAX_LOGGED_URL_LENGTH = 512;

/**
 * Query parameters whose values are credentials. No endpoint reads them from
 * the query string, but a client may still send the OAuth 2 form or a token
 * there, and the request line must not carry it into the log.
 */
const SECRET_QUERY_PARAMETER = /([?&](?:password|passwd|secret|client_secret|token|access_token|refresh_token|id_token)=)[^&#]*/gi;

/** Returns the URL as logged: secret query values replaced, then cut to MAX_LOGGED_URL_LENGTH. */
export function urlForLog(url: string): string {
  const redacted = url.replace(SECRET_QUERY_PARAMETER, '$1[redacted]');
  return redacted.length > MAX_LOGGED_URL_LENGTH ? `${redacted.slice(0, MAX_LOGGED_URL_LENGTH)}…` : redacted;
}

/**
 * One log line per request with request id, operation, route facts, status,
 * bytes and duration. 4xx responses log at warn (a 404 to HEAD at info), 5xx at error; health checks
 * are not logged. Authorization headers are redacted by the logger.
 */
export function createRequestLogger(logger: pino.Logger): HttpLogger {
  return pinoHttp({
    logger,
    genReqId: (request, response) => {
      const id = requestIdOf(request as IncomingMessage & { headers: Record<string, string | string[] | undefined> });
      response.setHeader('X-Request-Id', id);
      return id;
    },
    autoLogging: { ignore: (request) => request.url === '/healthz' || request.url === '/readyz' },
    customLogLevel: (request, response, error) => {
      if (error || response.statusCode >= 500) return 'error';
      // Push clients check with HEAD whether each blob and manifest exists, so a 404 there is routine.
      if (request.method === 'HEAD' && response.statusCode === 404) return 'info';
      if (response.statusCode >= 400) return 'warn';
      return 'info';
    },
    customSuccessMessage: (request, response) => `${request.method} ${response.statusCode}`,
    customErrorMessage: (request, response) => `${request.method} ${response.statusCode}`,
    customProps: (_request, response) => {
      const locals = (response as LocalsResponse).locals ?? {};
      return {
        ...(locals.operation ? { operation: locals.operation } : {}),
        ...((locals.logFields as Record<string, string> | undefined) ?? {}),
        ...(locals.errorCode ? { errorCode: locals.errorCode } : {}),
      };
    },
    serializers: {
      req: (request: { id: unknown; method: string; url: string; headers: Record<string, unknown>; remoteAddress?: string }) => ({
        id: request.id,
        method: request.method,
        url: urlForLog(request.url),
        userAgent: request.headers['user-agent'],
        remoteAddress: request.remoteAddress,
      }),
      res: (response: { statusCode: number; headers: Record<string, unknown> }) => ({ statusCode: response.statusCode, contentLength: response.headers['content-length'] }),
    },
  });
}
