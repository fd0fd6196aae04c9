import express, { type Request, type Response } from 'express';
import type { Knex } from 'knex';
import type pino from 'pino';
import type { RegistryEventSink } from '../audit/registry-events.js';
import { AccountService } from '../auth/accounts.js';
import type { Authenticator } from '../auth/authenticator.js';
import { authenticate } from './authentication.js';
import { ApiError } from './errors.js';
import { createGrantsRouter } from './grants.js';
import { createGroupsRouter } from './groups.js';
import { createRobotsRouter } from './robots.js';
import { createUsersRouter } from './users.js';
import { rejectUnsafeJson } from './validation.js';

export interface ManagementApiDeps {
  db: Knex;
  authenticator: Authenticator;
  events: RegistryEventSink;
  /** Process logger; each request logs through its own context logger. */
  logger: pino.Logger;
}

/** Largest JSON body the management API reads. */
const MAX_BODY_SIZE = '64kb';

/**
 * Builds the account management part of the REST API that openapi.yaml
 * describes: users, robots, groups and grants. Every request is
 * authenticated before its body is read, and errors go to the shared error
 * handler, which renders the API envelope for paths under /api/. The router
 * ends with the 404 NOT_FOUND response for every unknown path, so it must be
 * mounted at /api/v1 after every other router there.
 */
export function createManagementRouter(deps: ManagementApiDeps): express.Router {
  const accounts = new AccountService({ db: deps.db, events: deps.events });
  const router = express.Router();

  router.use((_request: Request, response: Response, next) => {
    // Responses can carry a robot secret or account details, so no cache may keep them.
    response.set('Cache-Control', 'no-store');
    next();
  });
  router.use(authenticate(deps.authenticator));
  router.use(express.json({ limit: MAX_BODY_SIZE }), rejectUnsafeJson);

  router.use('/users', createUsersRouter({ accounts, authenticator: deps.authenticator }));
  router.use('/robots', createRobotsRouter({ accounts }));
  router.use('/groups', createGroupsRouter({ accounts }));
  router.use('/grants', createGrantsRouter({ accounts }));

  router.use((request: Request) => {
    throw new ApiError('NOT_FOUND', `no management API endpoint for ${request.method} ${request.originalUrl.split('?', 1)[0]?.slice(0, 200)}`);
  });
  return router;
}
