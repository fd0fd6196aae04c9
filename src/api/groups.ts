import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import type { AccountService } from '../auth/accounts.js';
import { describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import { actorOf, requireAdmin } from './authentication.js';
import { parseBody } from './validation.js';

const createGroupBody = z.strictObject({
  name: z.string(),
  description: z.string().optional(),
});

function nameOf(request: Request): string {
  return request.params.name as string;
}

function memberOf(request: Request): string {
  return request.params.member as string;
}

/**
 * Routes under /groups, all admin only: create, list, show and delete custom
 * groups, and add or remove members (`user:<name>` or `robot:<name>`).
 */
export function createGroupsRouter(deps: { accounts: AccountService }): express.Router {
  const { accounts } = deps;
  const router = express.Router();
  router.use(requireAdmin);

  router.post('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.groupCreate);
    const body = parseBody(createGroupBody, request);
    const group = await accounts.createGroup(actorOf(request, response), body);
    response.status(201).location(`${request.baseUrl}/${encodeURIComponent(group.name)}`).json(group);
  });

  router.get('/', async (_request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.groupList);
    response.json({ groups: await accounts.listGroups() });
  });

  router.get('/:name', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.groupGet, { target: nameOf(request) });
    response.json(await accounts.getGroup(nameOf(request)));
  });

  router.delete('/:name', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.groupDelete, { target: nameOf(request) });
    await accounts.deleteGroup(actorOf(request, response), nameOf(request));
    response.status(204).end();
  });

  // PUT is idempotent: adding a member twice returns 204 both times.
  router.put('/:name/members/:member', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.groupMemberAdd, { target: `${nameOf(request)} ${memberOf(request)}` });
    await accounts.addMember(actorOf(request, response), nameOf(request), memberOf(request));
    response.status(204).end();
  });

  router.delete('/:name/members/:member', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.groupMemberRemove, { target: `${nameOf(request)} ${memberOf(request)}` });
    await accounts.removeMember(actorOf(request, response), nameOf(request), memberOf(request));
    response.status(204).end();
  });

  return router;
}
