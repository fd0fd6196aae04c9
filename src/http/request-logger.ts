import type { IncomingMessage, ServerResponse } from 'node:http';
import { pinoHttp, type HttpLogger } from 'pino-http';
import type pino from 'pino';
import { requestIdOf } from './request-context.js';

type LocalsResponse = ServerResponse & { locals?: Record<string, unknown> };

/**
 * One log line per request with request id, operation, route facts, status,
 * bytes and duration. 4xx answers log at warn, 5xx at error; health checks
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
    customLogLevel: (_request, response, error) => {
      if (error || response.statusCode >= 500) return 'error';
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
        url: request.url.length > 512 ? `${request.url.slice(0, 512)}…` : request.url,
        userAgent: request.headers['user-agent'],
        remoteAddress: request.remoteAddress,
      }),
      res: (response: { statusCode: number; headers: Record<string, unknown> }) => ({ statusCode: response.statusCode, contentLength: response.headers['content-length'] }),
    },
  });
}
