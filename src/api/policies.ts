import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import type { PolicyService } from '../policy/policy-service.js';
import { contextOf, describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import { principalOf, requireAdmin } from './authentication.js';
import { parseBody } from './validation.js';

/** Maximum length of a string field accepted before the service checks it. */
const MAX_FIELD_LENGTH = 1000;

/** Maximum number of entries of a list field accepted before the service checks the list. */
const MAX_LIST_LENGTH = 100;

const policyFields = {
  pattern: z.string().max(MAX_FIELD_LENGTH),
  requiredRoles: z.array(z.string().max(MAX_FIELD_LENGTH)).max(MAX_LIST_LENGTH),
  validitySeconds: z.number().int().nullable(),
  uncertifiedGroups: z.array(z.string().max(MAX_FIELD_LENGTH)).max(MAX_LIST_LENGTH),
  mode: z.string().max(MAX_FIELD_LENGTH),
};

const createPolicyBody = z.strictObject({
  name: z.string().max(MAX_FIELD_LENGTH),
  pattern: policyFields.pattern,
  requiredRoles: policyFields.requiredRoles,
  validitySeconds: policyFields.validitySeconds.optional(),
  uncertifiedGroups: policyFields.uncertifiedGroups.optional(),
  mode: policyFields.mode.optional(),
});

const updatePolicyBody = z.strictObject({
  pattern: policyFields.pattern.optional(),
  requiredRoles: policyFields.requiredRoles.optional(),
  validitySeconds: policyFields.validitySeconds.optional(),
  uncertifiedGroups: policyFields.uncertifiedGroups.optional(),
  mode: policyFields.mode.optional(),
});

function nameOf(request: Request): string {
  return request.params.name as string;
}

/** Routes under /policies, all admin only: create, list, show, change and delete certification policies. */
export function createPoliciesRouter(deps: { policies: PolicyService }): express.Router {
  const { policies } = deps;
  const router = express.Router();
  router.use(requireAdmin);

  router.post('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.policyCreate);
    const body = parseBody(createPolicyBody, request);
    const policy = await policies.create(body, principalOf(request, response), contextOf(request, response));
    response.status(201).location(`${request.baseUrl}/${encodeURIComponent(policy.name)}`).json(policy);
  });

  router.get('/', async (_request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.policyList);
    response.json({ policies: await policies.list() });
  });

  router.get('/:name', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.policyGet, { target: nameOf(request) });
    response.json(await policies.get(nameOf(request)));
  });

  router.patch('/:name', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.policyUpdate, { target: nameOf(request) });
    const body = parseBody(updatePolicyBody, request);
    response.json(await policies.update(nameOf(request), body, principalOf(request, response), contextOf(request, response)));
  });

  router.delete('/:name', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.policyDelete, { target: nameOf(request) });
    await policies.delete(nameOf(request), principalOf(request, response), contextOf(request, response));
    response.status(204).end();
  });

  return router;
}
