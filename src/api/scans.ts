import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import type { Caller } from '../auth/authenticator.js';
import { contextOf, describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import { assertMayReadScans, MAX_WAIVER_REASON_LENGTH, type ScanService } from '../scan/service.js';
import { principalOf } from './authentication.js';
import { parseBody, parseQuery } from './validation.js';

/** Maximum length of a repository or digest accepted before the service checks its grammar. */
const MAX_NAME_FIELD = 1000;

const scanQuery = z.object({
  repository: z.string().max(MAX_NAME_FIELD),
  digest: z.string().max(MAX_NAME_FIELD),
});

const rescanBody = z.strictObject({
  repository: z.string().max(MAX_NAME_FIELD),
});

const waiverBody = z.strictObject({
  reason: z.string().trim().min(1, 'a waiver needs a reason').max(MAX_WAIVER_REASON_LENGTH, `expected at most ${MAX_WAIVER_REASON_LENGTH} characters`),
  expiresAt: z.iso.datetime({ offset: true, error: 'expected an ISO 8601 date and time, such as 2030-01-31T12:00:00Z' }).optional(),
});

/**
 * Routes under /scans: the scan of a manifest (pull on the repository, a
 * certify permission, audit:read or admin), rescans (certify:security or
 * admin) and waivers of findings (certify:security).
 */
export function createScansRouter(deps: { scans: ScanService }): express.Router {
  const { scans } = deps;
  const router = express.Router();

  router.get('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.scanGet);
    const query = parseQuery(scanQuery, request);
    describeRequest(response, OPERATIONS.scanGet, { repository: query.repository, digest: query.digest });
    const caller = response.locals.caller as Caller;
    const holdsPull = caller.holds({ type: 'repository', name: query.repository, action: 'pull' });
    assertMayReadScans(principalOf(request, response), query.repository, holdsPull);
    response.json(await scans.view(query.repository, query.digest));
  });

  router.post('/findings/:id/waivers', async (request: Request, response: Response) => {
    const id = request.params.id as string;
    describeRequest(response, OPERATIONS.scanWaiverCreate, { target: id.slice(0, 64) });
    const body = parseBody(waiverBody, request);
    const finding = await scans.waive(contextOf(request, response), principalOf(request, response), id, body);
    response.status(201).json(finding);
  });

  router.post('/:digest/rescan', async (request: Request, response: Response) => {
    const digest = request.params.digest as string;
    describeRequest(response, OPERATIONS.scanRescan, { digest: digest.slice(0, 200) });
    const body = parseBody(rescanBody, request);
    describeRequest(response, OPERATIONS.scanRescan, { repository: body.repository, digest: digest.slice(0, 200) });
    response.status(202).json(await scans.rescan(contextOf(request, response), principalOf(request, response), body.repository, digest));
  });

  return router;
}
