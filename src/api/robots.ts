import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import type { AccountService } from '../auth/accounts.js';
import { describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import { actorOf, requireAdmin } from './authentication.js';
import { parseBody } from './validation.js';

const createRobotBody = z.strictObject({
  name: z.string(),
  expiresAt: z.iso.datetime({ offset: true, error: 'expected an ISO 8601 date and time with a time zone, such as 2030-01-31T00:00:00Z' }).nullable().optional(),
});

function nameOf(request: Request): string {
  return request.params.name as string;
}

/** Routes under /robots, all admin only: create (the only response with the secret), list, show and revoke robot accounts. */
export function createRobotsRouter(deps: { accounts: AccountService }): express.Router {
  const { accounts } = deps;
  const router = express.Router();
  router.use(requireAdmin);

  router.post('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.robotCreate);
    const body = parseBody(createRobotBody, request);
    const expiresAt = body.expiresAt ? new Date(body.expiresAt) : null;
    const { robot, secret } = await accounts.createRobot(actorOf(request, response), { name: body.name, expiresAt });
    response
      .status(201)
      .location(`${request.baseUrl}/${encodeURIComponent(robot.name)}`)
      .json({ ...robot, secret });
  });

  router.get('/', async (_request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.robotList);
    response.json({ robots: await accounts.listRobots() });
  });

  router.get('/:name', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.robotGet, { target: nameOf(request) });
    response.json(await accounts.getRobot(nameOf(request)));
  });

  router.delete('/:name', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.robotRevoke, { target: nameOf(request) });
    await accounts.revokeRobot(actorOf(request, response), nameOf(request));
    response.status(204).end();
  });

  return router;
}
