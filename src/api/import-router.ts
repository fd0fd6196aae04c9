import express, { type NextFunction, type Request, type Response } from 'express';
import type { Authenticator } from '../auth/authenticator.js';
import {
  ImportInputError,
  ImportPermissionError,
  ImportResourceNotFoundError,
  UpstreamExistsError,
  UpstreamNotAllowedError,
} from '../upstream/errors.js';
import type { ImportService } from '../upstream/imports.js';
import type { UpstreamService } from '../upstream/upstreams.js';
import { authenticate } from './authentication.js';
import { ApiError } from './errors.js';
import { createImportsRouter } from './imports.js';
import { createUpstreamsRouter } from './upstreams.js';
import { rejectUnsafeJson } from './validation.js';

export interface ImportApiDeps {
  authenticator: Authenticator;
  upstreams: UpstreamService;
  imports: ImportService;
}

/** Largest JSON body these routes read. */
const MAX_BODY_SIZE = '64kb';

/** Turns the import domain's errors into management API errors; other errors pass unchanged. */
function toImportApiError(error: unknown): unknown {
  if (error instanceof ImportInputError) return new ApiError('INVALID_REQUEST', error.message, { problems: error.problems });
  if (error instanceof UpstreamNotAllowedError) return new ApiError('FORBIDDEN', error.message, { upstream: error.host, reason: error.reason });
  if (error instanceof ImportPermissionError) return new ApiError('FORBIDDEN', error.message, { required: 'import', repository: error.repository });
  if (error instanceof ImportResourceNotFoundError) return new ApiError('NOT_FOUND', error.message, { resource: error.resource, key: error.key.slice(0, 200) });
  if (error instanceof UpstreamExistsError) return new ApiError('CONFLICT', error.message, { resource: 'upstream', key: error.host, reason: 'exists' });
  return error;
}

function translateErrors(error: unknown, _request: Request, _response: Response, next: NextFunction): void {
  next(toImportApiError(error));
}

function notFound(request: Request): never {
  throw new ApiError('NOT_FOUND', `no management API endpoint for ${request.method} ${request.originalUrl.split('?', 1)[0]?.slice(0, 200)}`);
}

function noStore(_request: Request, response: Response, next: NextFunction): void {
  response.set('Cache-Control', 'no-store');
  next();
}

/**
 * Builds the upstream and import routes, to be mounted at /api/v1. Only
 * paths under /upstreams and /imports are handled here, each authenticated
 * before its body is read, and an unknown one of them is 404; requests for
 * other paths pass through untouched.
 */
export function createImportApiRouter(deps: ImportApiDeps): express.Router {
  const router = express.Router();
  const prepare = [noStore, authenticate(deps.authenticator), express.json({ limit: MAX_BODY_SIZE }), rejectUnsafeJson];
  router.use('/upstreams', ...prepare, createUpstreamsRouter({ upstreams: deps.upstreams }), notFound, translateErrors);
  router.use('/imports', ...prepare, createImportsRouter({ imports: deps.imports }), notFound, translateErrors);
  return router;
}
