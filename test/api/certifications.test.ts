import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apiRequest, bearerAuthorization, errorCode, problemFields } from '../helpers/api.js';
import { approveAll, createReviewers, decideOk, getStatus, postDecision, postRevocation, pushImage, type Reviewers } from '../helpers/certification-api.js';
import { CollectingEventSink } from '../helpers/events.js';
import { uniqueRepository } from '../helpers/registry-client.js';
import { basicAuthorization, createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';

interface QueueBody {
  items: Array<{ repository: string; digest: string; tags: string[]; pushedAt: string; state: string; missingRoles: string[] }>;
  nextCursor: string | null;
}

describe('certification API', () => {
  let server: TestServer;
  let reviewers: Reviewers;
  let developer: string;
  let outsider: string;
  const events = new CollectingEventSink();

  before(async () => {
    server = await startTestServer({ events });
    reviewers = await createReviewers(server);
    developer = basicAuthorization(await createTestUser(server.db, 'developer'));
    await grantToUser(server.db, 'developer', 'team/**', ['pull']);
    outsider = basicAuthorization(await createTestUser(server.db, 'outsider'));
  });
  after(() => server.close());

  describe('POST /api/v1/certifications', () => {
    test('returns 201 and pending for one approval of three', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postDecision(server, reviewers.security, { repository, digest, role: 'security', comment: 'scanned', evidence: { scan: 'https://ci.example/scan/1' } });
      assert.equal(response.status, 201);
      assert.equal(response.body.state, 'pending');
      assert.deepEqual(response.body.missingRoles, ['it', 'qa']);
    });

    test('returns the stored decision with its role and actor', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postDecision(server, reviewers.security, { repository, digest, role: 'security', comment: 'scanned', evidence: { scan: 'https://ci.example/scan/1' } });
      assert.equal(response.body.decision.role, 'security');
      assert.equal(response.body.decision.actor, 'reviewer-security');
      assert.equal(response.body.decision.decision, 'approve');
      assert.deepEqual(response.body.decision.evidence, { scan: 'https://ci.example/scan/1' });
    });

    test('returns certified after it, security and qa approve', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await approveAll(server, reviewers, repository, digest);
      assert.equal(response.body.state, 'certified');
      assert.deepEqual(response.body.missingRoles, []);
    });

    test('returns rejected after one rejection', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await approveAll(server, reviewers, repository, digest, ['it', 'security']);
      const response = await decideOk(server, reviewers.qa, { repository, digest, role: 'qa', decision: 'reject', comment: 'crashes on start' });
      assert.equal(response.body.state, 'rejected');
      assert.deepEqual(response.body.rejectedRoles, ['qa']);
    });

    test('lets one person in all three groups certify, recording each role', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      let response;
      for (const role of ['it', 'security', 'qa']) response = await decideOk(server, reviewers.all, { repository, digest, role });
      assert.equal(response?.body.state, 'certified');
      assert.deepEqual(
        response?.body.decisions.map((decision: { role: string; actor: string }) => `${decision.role}:${decision.actor}`),
        ['it:reviewer-all', 'security:reviewer-all', 'qa:reviewer-all'],
      );
    });

    test('returns 403 naming certify:qa for a security reviewer acting as qa', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postDecision(server, reviewers.security, { repository, digest, role: 'qa' });
      assert.equal(response.status, 403);
      assert.deepEqual(response.body.error.details.required, ['certify:qa']);
    });

    test('returns 403 for an administrator outside the reviewer groups', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postDecision(server, server.adminAuthorization, { repository, digest, role: 'it' });
      assert.equal(response.status, 403);
    });

    test('returns 404 for an unknown digest', async () => {
      const repository = uniqueRepository('team');
      await pushImage(server, repository);
      const response = await postDecision(server, reviewers.it, { repository, digest: `sha256:${'0'.repeat(64)}`, role: 'it' });
      assert.equal(response.status, 404);
      assert.equal(response.body.error.details.resource, 'manifest');
    });

    test('returns 404 for an unknown repository', async () => {
      const response = await postDecision(server, reviewers.it, { repository: 'team/never-pushed', digest: `sha256:${'0'.repeat(64)}`, role: 'it' });
      assert.equal(response.status, 404);
      assert.equal(response.body.error.details.resource, 'repository');
    });

    test('returns 404 for a digest of another repository', async () => {
      const digest = await pushImage(server, uniqueRepository('team'));
      const other = uniqueRepository('team');
      await pushImage(server, other);
      const response = await postDecision(server, reviewers.it, { repository: other, digest, role: 'it' });
      assert.equal(response.status, 404);
    });

    test('returns 400 naming digest for a tag given as digest', async () => {
      const repository = uniqueRepository('team');
      await pushImage(server, repository, 'latest');
      const response = await postDecision(server, reviewers.it, { repository, digest: 'latest', role: 'it' });
      assert.equal(response.status, 400);
      assert.deepEqual(problemFields(response), ['digest']);
    });

    test('returns 400 naming role for an unknown role', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postDecision(server, reviewers.it, { repository, digest, role: 'ops' });
      assert.deepEqual(problemFields(response), ['role']);
    });

    test('returns 400 naming decision for an unknown decision', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postDecision(server, reviewers.it, { repository, digest, role: 'it', decision: 'maybe' });
      assert.deepEqual(problemFields(response), ['decision']);
    });

    test('returns 400 naming evidence for evidence that is no object', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postDecision(server, reviewers.it, { repository, digest, role: 'it', evidence: ['a'] });
      assert.deepEqual(problemFields(response), ['evidence']);
    });

    test('returns 400 for a role the policy does not require', async () => {
      const created = await apiRequest(server, 'post', '/api/v1/policies', server.adminAuthorization).send({ name: 'security-only', pattern: 'secure/**', requiredRoles: ['security'] });
      assert.equal(created.status, 201);
      const repository = uniqueRepository('secure');
      const digest = await pushImage(server, repository);
      const response = await postDecision(server, reviewers.it, { repository, digest, role: 'it' });
      assert.equal(response.status, 400);
      assert.match(response.body.error.message, /requires the roles security/);
    });

    test('returns 401 without credentials', async () => {
      const response = await postDecision(server, undefined, { repository: 'team/app', digest: `sha256:${'0'.repeat(64)}`, role: 'it' });
      assert.equal(response.status, 401);
    });

    test('accepts a Bearer token from /token', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postDecision(server, await bearerAuthorization(server, reviewers.it), { repository, digest, role: 'it' });
      assert.equal(response.status, 201);
    });

    test('records a certification.decision event with the new state', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await decideOk(server, reviewers.qa, { repository, digest, role: 'qa' });
      const recorded = events.ofAction('certification.decision').filter((event) => event.digest === digest);
      assert.deepEqual(recorded, [{ action: 'certification.decision', repository, digest, role: 'qa', decision: 'approve', actor: 'reviewer-qa', state: 'pending', comment: '' }]);
    });
  });

  describe('POST /api/v1/certifications/revocations', () => {
    test('returns 201 and revoked for a certified digest', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await approveAll(server, reviewers, repository, digest);
      const response = await postRevocation(server, reviewers.security, { repository, digest, reason: 'CVE in the base image' });
      assert.equal(response.status, 201);
      assert.equal(response.body.state, 'revoked');
      assert.equal(response.body.revocation.actor, 'reviewer-security');
    });

    test('re-approval by every role after a revocation certifies again', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await approveAll(server, reviewers, repository, digest);
      await postRevocation(server, reviewers.it, { repository, digest });
      const response = await approveAll(server, reviewers, repository, digest);
      assert.equal(response.body.state, 'certified');
    });

    test('a partial re-approval after a revocation stays revoked', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await approveAll(server, reviewers, repository, digest);
      await postRevocation(server, reviewers.it, { repository, digest });
      const response = await approveAll(server, reviewers, repository, digest, ['it', 'security']);
      assert.equal(response.body.state, 'revoked');
      assert.deepEqual(response.body.missingRoles, ['qa']);
    });

    test('an administrator may revoke', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await approveAll(server, reviewers, repository, digest);
      const response = await postRevocation(server, server.adminAuthorization, { repository, digest });
      assert.equal(response.status, 201);
    });

    test('returns 403 for a user without certify or admin', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await approveAll(server, reviewers, repository, digest);
      const response = await postRevocation(server, developer, { repository, digest });
      assert.equal(response.status, 403);
    });

    test('returns 409 when nothing was decided since the last revocation', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postRevocation(server, reviewers.it, { repository, digest });
      assert.equal(response.status, 409);
      assert.equal(response.body.error.details.reason, 'nothing_to_revoke');
    });

    test('returns 400 naming reason for a blank reason', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await postRevocation(server, reviewers.it, { repository, digest, reason: '  ' });
      assert.deepEqual(problemFields(response), ['reason']);
    });

    test('returns 404 for an unknown digest', async () => {
      const repository = uniqueRepository('team');
      await pushImage(server, repository);
      const response = await postRevocation(server, reviewers.it, { repository, digest: `sha256:${'1'.repeat(64)}` });
      assert.equal(response.status, 404);
    });

    test('records a certification.revocation event', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await approveAll(server, reviewers, repository, digest);
      await postRevocation(server, reviewers.qa, { repository, digest, reason: 'flaky' });
      const recorded = events.ofAction('certification.revocation').filter((event) => event.digest === digest);
      assert.deepEqual(recorded, [{ action: 'certification.revocation', repository, digest, reason: 'flaky', actor: 'reviewer-qa' }]);
    });
  });

  describe('GET /api/v1/certifications/status', () => {
    test('resolves a tag to its digest', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository, 'v1');
      const response = await getStatus(server, developer, repository, 'v1');
      assert.equal(response.status, 200);
      assert.equal(response.body.digest, digest);
      assert.equal(response.body.tag, 'v1');
    });

    test('shows the state, policy and missing roles', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await decideOk(server, reviewers.it, { repository, digest, role: 'it' });
      const response = await getStatus(server, developer, repository, digest);
      assert.equal(response.body.state, 'pending');
      assert.equal(response.body.policy.name, 'default');
      assert.deepEqual(response.body.requiredRoles, ['it', 'security', 'qa']);
      assert.deepEqual(response.body.missingRoles, ['security', 'qa']);
      assert.equal(response.body.expiresAt, null);
    });

    test('a moved tag shows the new digest as pending', async () => {
      const repository = uniqueRepository('team');
      const first = await pushImage(server, repository, 'stable');
      await approveAll(server, reviewers, repository, first);
      await pushImage(server, repository, 'stable');
      const response = await getStatus(server, developer, repository, 'stable');
      assert.equal(response.body.state, 'pending');
    });

    test('a reviewer without pull may read it', async () => {
      const repository = uniqueRepository('other');
      const digest = await pushImage(server, repository);
      const response = await getStatus(server, reviewers.qa, repository, digest);
      assert.equal(response.status, 200);
    });

    test('returns 403 for a user without pull, certify or admin', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await getStatus(server, outsider, repository, digest);
      assert.equal(response.status, 403);
    });

    test('returns 403 for a developer outside its grant', async () => {
      const repository = uniqueRepository('other');
      const digest = await pushImage(server, repository);
      const response = await getStatus(server, developer, repository, digest);
      assert.equal(response.status, 403);
    });

    test('returns 404 for an unknown tag', async () => {
      const repository = uniqueRepository('team');
      await pushImage(server, repository, 'v1');
      const response = await getStatus(server, developer, repository, 'v2');
      assert.equal(response.status, 404);
      assert.equal(response.body.error.details.resource, 'tag');
    });

    test('returns 400 naming reference for an invalid reference', async () => {
      const response = await getStatus(server, developer, 'team/app', '-bad');
      assert.deepEqual(problemFields(response), ['reference']);
    });

    test('returns 400 naming repository for an invalid name', async () => {
      const response = await getStatus(server, developer, 'Team/App', 'latest');
      assert.deepEqual(problemFields(response), ['repository']);
    });

    test('returns 400 naming repository when it is missing', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/certifications/status?reference=latest', developer);
      assert.deepEqual(problemFields(response), ['repository']);
    });

    test('returns 401 without credentials', async () => {
      const response = await getStatus(server, undefined, 'team/app', 'latest');
      assert.equal(response.status, 401);
    });
  });

  describe('GET /api/v1/certifications/queue', () => {
    async function queueOf(role: string, authorization: string, repository: string): Promise<QueueBody['items']> {
      const items: QueueBody['items'] = [];
      let cursor: string | null = null;
      do {
        const query: Record<string, string> = { role, limit: '2', ...(cursor ? { cursor } : {}) };
        const response = await apiRequest(server, 'get', `/api/v1/certifications/queue?${new URLSearchParams(query).toString()}`, authorization);
        assert.equal(response.status, 200, response.text);
        const body = response.body as QueueBody;
        items.push(...body.items);
        cursor = body.nextCursor;
      } while (cursor !== null);
      return items.filter((item) => item.repository === repository);
    }

    test('lists images oldest first across pages', async () => {
      const repository = uniqueRepository('queue');
      const digests = [await pushImage(server, repository, 'one'), await pushImage(server, repository, 'two'), await pushImage(server, repository, 'three')];
      const items = await queueOf('it', reviewers.it, repository);
      assert.deepEqual(
        items.map((item) => item.digest),
        digests,
      );
    });

    test('shows tags and state of each image', async () => {
      const repository = uniqueRepository('queue');
      await pushImage(server, repository, 'v1');
      const [item] = await queueOf('qa', reviewers.qa, repository);
      assert.deepEqual(item?.tags, ['v1']);
      assert.equal(item?.state, 'pending');
    });

    test('leaves out images the role decided on', async () => {
      const repository = uniqueRepository('queue');
      const decided = await pushImage(server, repository);
      const waiting = await pushImage(server, repository);
      await decideOk(server, reviewers.qa, { repository, digest: decided, role: 'qa' });
      const items = await queueOf('qa', reviewers.qa, repository);
      assert.deepEqual(
        items.map((item) => item.digest),
        [waiting],
      );
    });

    test('keeps images other roles decided on', async () => {
      const repository = uniqueRepository('queue');
      const digest = await pushImage(server, repository);
      await decideOk(server, reviewers.qa, { repository, digest, role: 'qa' });
      const items = await queueOf('it', reviewers.it, repository);
      assert.deepEqual(
        items.map((item) => item.missingRoles),
        [['it', 'security']],
      );
    });

    test('leaves out rejected images', async () => {
      const repository = uniqueRepository('queue');
      const digest = await pushImage(server, repository);
      await decideOk(server, reviewers.security, { repository, digest, role: 'security', decision: 'reject' });
      const items = await queueOf('it', reviewers.it, repository);
      assert.deepEqual(items, []);
    });

    test('lists a revoked image again as revoked', async () => {
      const repository = uniqueRepository('queue');
      const digest = await pushImage(server, repository);
      await approveAll(server, reviewers, repository, digest);
      await postRevocation(server, reviewers.security, { repository, digest });
      const items = await queueOf('security', reviewers.security, repository);
      assert.deepEqual(
        items.map((item) => item.state),
        ['revoked'],
      );
    });

    test('lets an administrator read any queue', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/certifications/queue?role=security', server.adminAuthorization);
      assert.equal(response.status, 200);
    });

    test('returns 403 naming certify:it for a qa reviewer reading the it queue', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/certifications/queue?role=it', reviewers.qa);
      assert.equal(response.status, 403);
      assert.deepEqual(response.body.error.details.required, ['certify:it', 'admin']);
    });

    test('returns 400 naming limit above the maximum page size', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/certifications/queue?role=it&limit=1000', reviewers.it);
      assert.deepEqual(problemFields(response), ['limit']);
    });

    test('returns 400 naming cursor for a forged cursor', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/certifications/queue?role=it&cursor=bm90LWEtY3Vyc29y', reviewers.it);
      assert.deepEqual(problemFields(response), ['cursor']);
    });

    test('returns 400 naming role for an unknown role', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/certifications/queue?role=ops', reviewers.it);
      assert.deepEqual(problemFields(response), ['role']);
    });
  });

  describe('GET /api/v1/certifications/history', () => {
    test('lists decisions and revocations in order', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      await decideOk(server, reviewers.it, { repository, digest, role: 'it' });
      await decideOk(server, reviewers.security, { repository, digest, role: 'security', decision: 'reject' });
      await postRevocation(server, reviewers.security, { repository, digest, reason: 'retest' });
      await decideOk(server, reviewers.security, { repository, digest, role: 'security' });
      const response = await apiRequest(server, 'get', `/api/v1/certifications/history?${new URLSearchParams({ repository, digest }).toString()}`, developer);
      assert.equal(response.status, 200);
      assert.deepEqual(
        response.body.entries.map((entry: { kind: string; role?: string; decision?: string }) => (entry.kind === 'decision' ? `${entry.role}:${entry.decision}` : entry.kind)),
        ['it:approve', 'security:reject', 'revocation', 'security:approve'],
      );
    });

    test('returns 404 for a digest with no manifest and no history', async () => {
      const repository = uniqueRepository('team');
      await pushImage(server, repository);
      const response = await apiRequest(server, 'get', `/api/v1/certifications/history?${new URLSearchParams({ repository, digest: `sha256:${'2'.repeat(64)}` }).toString()}`, developer);
      assert.equal(response.status, 404);
    });

    test('returns 403 for a user without pull, certify or admin', async () => {
      const repository = uniqueRepository('team');
      const digest = await pushImage(server, repository);
      const response = await apiRequest(server, 'get', `/api/v1/certifications/history?${new URLSearchParams({ repository, digest }).toString()}`, outsider);
      assert.equal(response.status, 403);
    });
  });

  test('an unknown path under /api/v1/certifications returns 404', async () => {
    const response = await apiRequest(server, 'get', '/api/v1/certifications/nothing-here', reviewers.it);
    assert.equal(response.status, 404);
    assert.equal(errorCode(response), 'NOT_FOUND');
  });
});
