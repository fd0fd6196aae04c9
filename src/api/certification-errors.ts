import type { NextFunction, Request, Response } from 'express';
import { CertificationConflictError, CertificationNotFoundError, CertificationPermissionError, InvalidCertificationInputError } from '../certification/errors.js';
import { ApiError } from './errors.js';

/** Translates a domain error of certification or policy management into an ApiError, or returns null for any other error. */
export function certificationApiError(error: unknown): ApiError | null {
  if (error instanceof InvalidCertificationInputError) return new ApiError('INVALID_REQUEST', error.message, { problems: error.problems });
  if (error instanceof CertificationPermissionError) return new ApiError('FORBIDDEN', error.message, { required: error.required });
  if (error instanceof CertificationNotFoundError) return new ApiError('NOT_FOUND', error.message, { resource: error.resource, key: error.key });
  if (error instanceof CertificationConflictError) return new ApiError('CONFLICT', error.message, { resource: error.resource, key: error.key, reason: error.reason });
  return null;
}

/** Error middleware that passes certification errors on as ApiErrors, for the shared error handler to render. */
export function translateCertificationErrors(error: unknown, _request: Request, _response: Response, next: NextFunction): void {
  next(certificationApiError(error) ?? error);
}
