import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import type { Caller } from '../auth/authenticator.js';
import { DEFAULT_QUEUE_PAGE_SIZE, MAX_QUEUE_PAGE_SIZE } from '../certification/queue.js';
import { assertMayReadCertification, assertMayReadQueue, checkRepositoryName, decisionsSinceRevocation, MAX_COMMENT_LENGTH, MAX_REASON_LENGTH, type CertificationService } from '../certification/service.js';
import { isCertificationRole } from '../certification/roles.js';
import type { CertificationStatus } from '../certification/status.js';
import { contextOf, describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import { principalOf } from './authentication.js';
import { ApiError } from './errors.js';
import { parseBody, parseQuery } from './validation.js';

/** Maximum length of a repository, digest or reference accepted before the service checks its grammar. */
const MAX_NAME_FIELD = 1000;

const decisionBody = z.strictObject({
  repository: z.string().max(MAX_NAME_FIELD),
  digest: z.string().max(MAX_NAME_FIELD),
  role: z.string().max(MAX_NAME_FIELD),
  decision: z.string().max(MAX_NAME_FIELD),
  comment: z.string().max(MAX_COMMENT_LENGTH).default(''),
  evidence: z.record(z.string(), z.unknown()).default({}),
});

const revocationBody = z.strictObject({
  repository: z.string().max(MAX_NAME_FIELD),
  digest: z.string().max(MAX_NAME_FIELD),
  reason: z.string().max(MAX_REASON_LENGTH),
});

const statusQuery = z.object({
  repository: z.string().max(MAX_NAME_FIELD),
  reference: z.string().max(MAX_NAME_FIELD),
});

const historyQuery = z.object({
  repository: z.string().max(MAX_NAME_FIELD),
  digest: z.string().max(MAX_NAME_FIELD),
});

const queueQuery = z.object({
  role: z.string().max(MAX_NAME_FIELD),
  limit: z.coerce.number().int().min(1).max(MAX_QUEUE_PAGE_SIZE).default(DEFAULT_QUEUE_PAGE_SIZE),
  cursor: z.string().max(MAX_NAME_FIELD).optional(),
});

/**
 * Returns a status as the API sends it: the policy in brief, and of the
 * decisions only those made since the latest revocation, which are the ones
 * that count. The full record is in the history.
 */
function statusBody(status: CertificationStatus): Record<string, unknown> {
  const latestRevocation = status.revocations.reduce<(typeof status.revocations)[number] | null>((latest, revocation) => (latest === null || revocation.createdAt > latest.createdAt ? revocation : latest), null);
  return {
    repository: status.repository,
    digest: status.digest,
    state: status.state,
    policy: { name: status.policy.name, pattern: status.policy.pattern, mode: status.policy.mode, validitySeconds: status.policy.validitySeconds },
    requiredRoles: status.requiredRoles,
    missingRoles: status.missingRoles,
    rejectedRoles: status.rejectedRoles,
    decisions: decisionsSinceRevocation(status),
    lastRevocation: latestRevocation,
    certifiedAt: status.certifiedAt,
    expiresAt: status.expiresAt,
    scan: status.scan,
  };
}

/** Throws 400 for an invalid repository name, and 403 unless the caller may read the certification of the repository. */
function checkReadAccess(request: Request, response: Response, repository: string): void {
  checkRepositoryName(repository);
  const caller = response.locals.caller as Caller;
  const holdsPull = caller.holds({ type: 'repository', name: repository, action: 'pull' });
  assertMayReadCertification(principalOf(request, response), repository, holdsPull);
}

/**
 * Routes under /certifications: decisions (reviewers with `certify:<role>`),
 * revocations (any reviewer or admin), status and history (pull on the
 * repository, any certify permission or admin), and the review queue
 * (`certify:<role>` or admin).
 */
export function createCertificationsRouter(deps: { certifications: CertificationService }): express.Router {
  const { certifications } = deps;
  const router = express.Router();

  router.post('/', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.certificationCreate);
    const body = parseBody(decisionBody, request);
    describeRequest(response, OPERATIONS.certificationCreate, { repository: body.repository, digest: body.digest });
    const { decision, status } = await certifications.decide(body, principalOf(request, response), contextOf(request, response));
    response.status(201).json({ decision, ...statusBody(status) });
  });

  router.post('/revocations', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.certificationRevoke);
    const body = parseBody(revocationBody, request);
    describeRequest(response, OPERATIONS.certificationRevoke, { repository: body.repository, digest: body.digest });
    const { revocation, status } = await certifications.revoke(body, principalOf(request, response), contextOf(request, response));
    response.status(201).json({ revocation, ...statusBody(status) });
  });

  router.get('/status', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.certificationStatus);
    const query = parseQuery(statusQuery, request);
    describeRequest(response, OPERATIONS.certificationStatus, { repository: query.repository });
    checkReadAccess(request, response, query.repository);
    const status = await certifications.status(query.repository, query.reference);
    response.json({ ...statusBody(status), tag: status.tag });
  });

  router.get('/history', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.certificationHistory);
    const query = parseQuery(historyQuery, request);
    describeRequest(response, OPERATIONS.certificationHistory, { repository: query.repository, digest: query.digest });
    checkReadAccess(request, response, query.repository);
    response.json(await certifications.history(query.repository, query.digest));
  });

  router.get('/queue', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.certificationQueue);
    const query = parseQuery(queueQuery, request);
    if (!isCertificationRole(query.role)) {
      const message = `unknown role "${query.role.slice(0, 100)}": use it, security or qa`;
      throw new ApiError('INVALID_REQUEST', `role: ${message}`, { problems: [{ field: 'role', message }] });
    }
    assertMayReadQueue(principalOf(request, response), query.role);
    response.json(await certifications.queue(query.role, { limit: query.limit, cursor: query.cursor ?? null }));
  });

  return router;
}
