import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import { contextOf, describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import type { UpstreamService } from '../upstream/upstreams.js';
import { principalOf, requireAdmin } from './authentication.js';
import { parseBody } from './validation.js';

const createUpstreamBody = z.strictObject({
  host: z.string().max(300, 'expected at most 300 characters'),
  credentials: z.strictObject({ username: z.string(), password: z.string() }).optional(),
  insecureHttp: z.boolean().optional(),
});

function hostOf(request: Request): string {
  return request.params.host as string;
}

/** Routes under /upstreams, all admin only: list, show, add and remove allowlisted upstream registries. */
export function createUpstreamsRouter(deps: { upstreams: UpstreamService }): express.Router {
  const { upstreams } = deps;
  const router = express.Router();
  router.use(requireAdmin);

  router.get('/', async (_request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.upstreamList);
    response.json({ upstreams: await upstreams.list() });
  });

  router.post('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.upstreamCreate);
    const body = parseBody(createUpstreamBody, request);
    const upstream = await upstreams.create(contextOf(request, response), principalOf(request, response).subject, body);
    response
      .status(201)
      .location(`${request.baseUrl}/${encodeURIComponent(upstream.host)}`)
      .json(upstream);
  });

  router.get('/:host', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.upstreamGet, { target: hostOf(request) });
    response.json(await upstreams.get(hostOf(request)));
  });

  router.delete('/:host', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.upstreamDelete, { target: hostOf(request) });
    await upstreams.delete(contextOf(request, response), principalOf(request, response).subject, hostOf(request));
    response.status(204).end();
  });

  return router;
}
