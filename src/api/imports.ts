import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import { repositoryPermissions } from '../auth/permissions.js';
import { contextOf, describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import { MAX_IMPORT_LIST_LIMIT, type ImportRequester, type ImportService } from '../upstream/imports.js';
import { isAdministrator, principalOf } from './authentication.js';
import { parseBody, parseQuery } from './validation.js';

const createImportBody = z.strictObject({
  source: z.string().max(1024, 'expected at most 1024 characters'),
  target: z.string().max(512, 'expected at most 512 characters'),
});

const listImportsQuery = z.strictObject({
  status: z.enum(['queued', 'running', 'succeeded', 'failed'], { error: 'expected queued, running, succeeded or failed' }).optional(),
  limit: z.coerce
    .number({ error: 'expected a number' })
    .int('expected a whole number')
    .min(1, 'expected at least 1')
    .max(MAX_IMPORT_LIST_LIMIT, `expected at most ${MAX_IMPORT_LIST_LIMIT}`)
    .default(100),
});

function requesterOf(request: Request, response: Response): ImportRequester {
  const principal = principalOf(request, response);
  return {
    kind: principal.kind,
    subject: principal.subject,
    isAdministrator: isAdministrator(principal),
    mayImportInto: (repository) => repositoryPermissions(principal.grants, principal.groups, repository).has('import'),
  };
}

/**
 * Routes under /imports: create an import (admin, or an `import` grant on
 * the target repository), and list and show imports (administrators see
 * all of them, everyone else their own).
 */
export function createImportsRouter(deps: { imports: ImportService }): express.Router {
  const { imports } = deps;
  const router = express.Router();

  router.post('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.importCreate);
    const body = parseBody(createImportBody, request);
    const created = await imports.create(contextOf(request, response), requesterOf(request, response), body);
    response
      .status(202)
      .location(`${request.baseUrl}/${created.id}`)
      .json(created);
  });

  router.get('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.importList);
    const query = parseQuery(listImportsQuery, request);
    response.json({ imports: await imports.list(requesterOf(request, response), query) });
  });

  router.get('/:id', async (request: Request, response: Response) => {
    const id = request.params.id as string;
    describeRequest(response, OPERATIONS.importGet, { target: id.slice(0, 64) });
    response.json(await imports.get(requesterOf(request, response), id));
  });

  return router;
}
