import express, { type NextFunction, type Request, type Response } from 'express';
import type { Authenticator } from '../auth/authenticator.js';
import { ScanConflictError, ScanInputError, ScanNotFoundError, ScanPermissionError } from '../scan/errors.js';
import type { ScanService } from '../scan/service.js';
import { authenticate } from './authentication.js';
import { ApiError } from './errors.js';
import { createScansRouter } from './scans.js';
import { rejectUnsafeJson } from './validation.js';

export interface ScanApiDeps {
  authenticator: Authenticator;
  scans: ScanService;
}

/** Largest JSON body these routes read, the same as the rest of the management API. */
const MAX_BODY_SIZE = '64kb';

/** Turns the scan domain's errors into management API errors; other errors pass unchanged. */
function toScanApiError(error: unknown): unknown {
  if (error instanceof ScanInputError) return new ApiError('INVALID_REQUEST', error.message, { problems: error.problems });
  if (error instanceof ScanPermissionError) return new ApiError('FORBIDDEN', error.message, { required: error.required });
  if (error instanceof ScanNotFoundError) return new ApiError('NOT_FOUND', error.message, { resource: error.resource, key: error.key });
  if (error instanceof ScanConflictError) return new ApiError('CONFLICT', error.message, { resource: 'scan', key: error.digest, reason: error.reason });
  return error;
}

function translateErrors(error: unknown, _request: Request, _response: Response, next: NextFunction): void {
  next(toScanApiError(error));
}

function notFound(request: Request): never {
  throw new ApiError('NOT_FOUND', `no management API endpoint for ${request.method} ${request.originalUrl.split('?', 1)[0]?.slice(0, 200)}`);
}

function noStore(_request: Request, response: Response, next: NextFunction): void {
  // Scan states and waivers change while reviewers look at them, so no cache may keep them.
  response.set('Cache-Control', 'no-store');
  next();
}

/**
 * Builds the secret scan routes, to be mounted at /api/v1. Only paths under
 * /scans are handled here, each authenticated before its body is read, and
 * an unknown one of them is 404; requests for other paths pass through.
 */
export function createScanApiRouter(deps: ScanApiDeps): express.Router {
  const router = express.Router();
  const prepare = [noStore, authenticate(deps.authenticator), express.json({ limit: MAX_BODY_SIZE }), rejectUnsafeJson];
  router.use('/scans', ...prepare, createScansRouter({ scans: deps.scans }), notFound, translateErrors);
  return router;
}
