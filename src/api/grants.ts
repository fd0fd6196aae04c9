import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import { AccountNotFoundError } from '../auth/account-errors.js';
import type { AccountService } from '../auth/accounts.js';
import { describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import { actorOf, requireAdmin } from './authentication.js';
import { parseBody, parseQuery } from './validation.js';

/** Maximum number of permissions in one grant request; there are fewer distinct permissions than this. */
const MAX_PERMISSIONS_PER_REQUEST = 32;

const createGrantBody = z.strictObject({
  subject: z.string(),
  repositories: z.string(),
  permissions: z.array(z.string()).min(1, 'expected at least one permission').max(MAX_PERMISSIONS_PER_REQUEST),
});

const listGrantsQuery = z.strictObject({
  subject: z.string().optional(),
  repositories: z.string().optional(),
  repository: z.string().optional(),
});

/** Grant ids in paths: positive decimal integers of at most 15 digits, which a JavaScript number represents exactly. */
const GRANT_ID_PATTERN = /^[1-9][0-9]{0,14}$/;

/** Returns the grant id of the path; a path segment that can be no id names no grant, so it is 404. */
function grantIdOf(request: Request): number {
  const text = request.params.id as string;
  if (!GRANT_ID_PATTERN.test(text)) throw new AccountNotFoundError('grant', text);
  return Number(text);
}

/**
 * Routes under /grants, all admin only: grant permissions on a repository
 * pattern to a user, robot or group, list grants with filters, show and
 * delete one.
 */
export function createGrantsRouter(deps: { accounts: AccountService }): express.Router {
  const { accounts } = deps;
  const router = express.Router();
  router.use(requireAdmin);

  router.post('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.grantCreate);
    const body = parseBody(createGrantBody, request);
    const grant = await accounts.createGrant(actorOf(request, response), body);
    response.status(201).location(`${request.baseUrl}/${grant.id}`).json(grant);
  });

  router.get('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.grantList);
    const filter = parseQuery(listGrantsQuery, request);
    response.json({ grants: await accounts.listGrants(filter) });
  });

  router.get('/:id', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.grantGet, { target: String(request.params.id) });
    response.json(await accounts.getGrant(grantIdOf(request)));
  });

  router.delete('/:id', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.grantDelete, { target: String(request.params.id) });
    await accounts.deleteGrant(actorOf(request, response), grantIdOf(request));
    response.status(204).end();
  });

  return router;
}
