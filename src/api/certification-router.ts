import express, { type NextFunction, type Request, type Response } from 'express';
import type { Knex } from 'knex';
import type pino from 'pino';
import type { RegistryEventSink } from '../audit/registry-events.js';
import type { Authenticator } from '../auth/authenticator.js';
import { CertificationService } from '../certification/service.js';
import { PolicyService } from '../policy/policy-service.js';
import { authenticate } from './authentication.js';
import { translateCertificationErrors } from './certification-errors.js';
import { createCertificationsRouter } from './certifications.js';
import { ApiError } from './errors.js';
import { createPoliciesRouter } from './policies.js';
import { rejectUnsafeJson } from './validation.js';

export interface CertificationApiDeps {
  db: Knex;
  authenticator: Authenticator;
  events: RegistryEventSink;
  /** Process logger; each request logs through its own context logger. */
  logger: pino.Logger;
}

/** Largest JSON body these routes read, the same as the rest of the management API. */
const MAX_BODY_SIZE = '64kb';

function noStore(_request: Request, response: Response, next: NextFunction): void {
  // Statuses change with every decision, so no cache may keep them.
  response.set('Cache-Control', 'no-store');
  next();
}

function notFound(request: Request): never {
  throw new ApiError('NOT_FOUND', `no management API endpoint for ${request.method} ${request.originalUrl.split('?', 1)[0]?.slice(0, 200)}`);
}

/**
 * Builds the certification and policy routes of the management API, to be
 * mounted at /api/v1: `/certifications…` and `/policies…`. Requests for other
 * paths pass through untouched, so this router can share /api/v1 with the
 * other management routes. A request under the two prefixes is authenticated
 * with Basic credentials or a Bearer token before its body is read, and an
 * anonymous one gets 401. An unknown path under them gets 404 here, so no
 * request is authenticated twice.
 */
export function createCertificationRouter(deps: CertificationApiDeps): express.Router {
  const certifications = new CertificationService({ db: deps.db, events: deps.events });
  const policies = new PolicyService({ db: deps.db, events: deps.events });
  const common = [noStore, authenticate(deps.authenticator), express.json({ limit: MAX_BODY_SIZE }), rejectUnsafeJson];

  const router = express.Router();
  router.use('/certifications', ...common, createCertificationsRouter({ certifications }), notFound);
  router.use('/policies', ...common, createPoliciesRouter({ policies }), notFound);
  router.use(translateCertificationErrors);
  return router;
}
