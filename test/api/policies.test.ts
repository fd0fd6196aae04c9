import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apiRequest, errorCode, problemFields } from '../helpers/api.js';
import { createReviewers, decideOk, getStatus, pushImage, type Reviewers } from '../helpers/certification-api.js';
import { CollectingEventSink } from '../helpers/events.js';
import { uniqueRepository } from '../helpers/registry-client.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('management API: policies', () => {
  let server: TestServer;
  let admin: string;
  let reviewers: Reviewers;
  const events = new CollectingEventSink();

  before(async () => {
    server = await startTestServer({ events });
    admin = server.adminAuthorization;
    reviewers = await createReviewers(server);
  });
  after(() => server.close());

  /** POSTs a policy as the administrator, as another caller, or without credentials when `authorization` is null. */
  function createPolicy(body: object, authorization: string | null = admin) {
    return apiRequest(server, 'post', '/api/v1/policies', authorization ?? undefined).send(body);
  }

  function updatePolicy(name: string, body: object) {
    return apiRequest(server, 'patch', `/api/v1/policies/${name}`, admin).send(body);
  }

  describe('POST /api/v1/policies', () => {
    test('returns 201 with the policy and its defaults', async () => {
      const response = await createPolicy({ name: 'base-images', pattern: 'base/**', requiredRoles: ['security', 'it'] });
      assert.equal(response.status, 201);
      assert.deepEqual(
        { name: response.body.name, pattern: response.body.pattern, requiredRoles: response.body.requiredRoles, validitySeconds: response.body.validitySeconds, uncertifiedGroups: response.body.uncertifiedGroups, mode: response.body.mode },
        { name: 'base-images', pattern: 'base/**', requiredRoles: ['security', 'it'], validitySeconds: null, uncertifiedGroups: [], mode: 'enforce' },
      );
    });

    test('sends the Location of the policy', async () => {
      const response = await createPolicy({ name: 'located', pattern: 'located/*', requiredRoles: ['qa'] });
      assert.equal(response.headers.location, '/api/v1/policies/located');
    });

    test('stores validity, uncertified groups and mode', async () => {
      const response = await createPolicy({ name: 'full', pattern: 'full/**', requiredRoles: ['qa'], validitySeconds: 86400, uncertifiedGroups: ['qa'], mode: 'dry-run' });
      assert.equal(response.body.validitySeconds, 86400);
      assert.deepEqual(response.body.uncertifiedGroups, ['qa']);
      assert.equal(response.body.mode, 'dry-run');
    });

    test('records a policy.change event', async () => {
      await createPolicy({ name: 'audited', pattern: 'audited/**', requiredRoles: ['it'] });
      const recorded = events.ofAction('policy.change').filter((event) => event.policy === 'audited');
      assert.deepEqual(recorded, [{ action: 'policy.change', policy: 'audited', change: 'create', by: 'admin' }]);
    });

    test('returns 409 for a taken name', async () => {
      await createPolicy({ name: 'twice', pattern: 'twice/**', requiredRoles: ['it'] });
      const response = await createPolicy({ name: 'twice', pattern: 'twice-again/**', requiredRoles: ['it'] });
      assert.equal(response.status, 409);
    });

    test('returns 409 naming the pattern for a taken pattern', async () => {
      await createPolicy({ name: 'first-owner', pattern: 'owned/**', requiredRoles: ['it'] });
      const response = await createPolicy({ name: 'second-owner', pattern: 'owned/**', requiredRoles: ['it'] });
      assert.equal(response.status, 409);
      assert.equal(response.body.error.details.key, 'owned/**');
    });

    test('returns 409 for the pattern of the default policy', async () => {
      const response = await createPolicy({ name: 'everything', pattern: '**', requiredRoles: ['it'] });
      assert.equal(response.status, 409);
    });

    const invalidBodies: Array<[string, object, string]> = [
      ['an invalid name', { name: 'Base Images', pattern: 'x/**', requiredRoles: ['it'] }, 'name'],
      ['an invalid pattern', { name: 'bad-pattern', pattern: 'team-*/app', requiredRoles: ['it'] }, 'pattern'],
      ['no required role', { name: 'no-roles', pattern: 'none/**', requiredRoles: [] }, 'requiredRoles'],
      ['an unknown role', { name: 'unknown-role', pattern: 'unknown/**', requiredRoles: ['ops'] }, 'requiredRoles'],
      ['a role listed twice', { name: 'twice-role', pattern: 'twice-role/**', requiredRoles: ['it', 'it'] }, 'requiredRoles'],
      ['a validity of zero', { name: 'zero', pattern: 'zero/**', requiredRoles: ['it'], validitySeconds: 0 }, 'validitySeconds'],
      ['a fractional validity', { name: 'fraction', pattern: 'fraction/**', requiredRoles: ['it'], validitySeconds: 1.5 }, 'validitySeconds'],
      ['an unknown group', { name: 'no-group', pattern: 'no-group/**', requiredRoles: ['it'], uncertifiedGroups: ['nobody'] }, 'uncertifiedGroups'],
      ['an unknown mode', { name: 'bad-mode', pattern: 'bad-mode/**', requiredRoles: ['it'], mode: 'audit' }, 'mode'],
      ['an unknown field', { name: 'extra', pattern: 'extra/**', requiredRoles: ['it'], owner: 'me' }, 'body'],
      ['a missing pattern', { name: 'missing', requiredRoles: ['it'] }, 'pattern'],
    ];
    for (const [description, body, field] of invalidBodies) {
      test(`returns 400 naming ${field} for ${description}`, async () => {
        const response = await createPolicy(body);
        assert.equal(response.status, 400);
        assert.deepEqual(problemFields(response), [field]);
      });
    }

    test('returns 403 naming admin for a reviewer', async () => {
      const response = await createPolicy({ name: 'by-reviewer', pattern: 'reviewer/**', requiredRoles: ['it'] }, reviewers.all);
      assert.equal(response.status, 403);
      assert.equal(response.body.error.details.required, 'admin');
    });

    test('returns 401 without credentials', async () => {
      const response = await createPolicy({ name: 'anonymous', pattern: 'anonymous/**', requiredRoles: ['it'] }, null);
      assert.equal(response.status, 401);
    });
  });

  describe('GET /api/v1/policies', () => {
    test('lists the default policy', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/policies', admin);
      assert.equal(response.status, 200);
      const names = (response.body.policies as Array<{ name: string }>).map((policy) => policy.name);
      assert.ok(names.includes('default'), `default missing from ${names.join(', ')}`);
    });

    test('shows one policy', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/policies/default', admin);
      assert.equal(response.status, 200);
      assert.equal(response.body.pattern, '**');
    });

    test('returns 404 for an unknown policy', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/policies/nothing', admin);
      assert.equal(response.status, 404);
      assert.equal(errorCode(response), 'NOT_FOUND');
    });

    test('returns 403 for a reviewer', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/policies', reviewers.it);
      assert.equal(response.status, 403);
    });
  });

  describe('PATCH /api/v1/policies/{name}', () => {
    test('changes the given fields only', async () => {
      await createPolicy({ name: 'changing', pattern: 'changing/**', requiredRoles: ['it'], validitySeconds: 60 });
      const response = await updatePolicy('changing', { requiredRoles: ['qa', 'security'] });
      assert.equal(response.status, 200);
      assert.deepEqual(response.body.requiredRoles, ['qa', 'security']);
      assert.equal(response.body.validitySeconds, 60);
    });

    test('clears the validity with null', async () => {
      await createPolicy({ name: 'expiring', pattern: 'expiring/**', requiredRoles: ['it'], validitySeconds: 60 });
      const response = await updatePolicy('expiring', { validitySeconds: null });
      assert.equal(response.body.validitySeconds, null);
    });

    test('a new required role set applies to existing images at once', async () => {
      await createPolicy({ name: 'narrowed', pattern: 'narrowed/**', requiredRoles: ['it', 'security', 'qa'] });
      const repository = uniqueRepository('narrowed');
      const digest = await pushImage(server, repository);
      await decideOk(server, reviewers.security, { repository, digest, role: 'security' });
      await updatePolicy('narrowed', { requiredRoles: ['security'] });
      const response = await getStatus(server, reviewers.security, repository, digest);
      assert.equal(response.body.state, 'certified');
    });

    test('changes the required roles of the default policy', async () => {
      const response = await updatePolicy('default', { requiredRoles: ['it', 'security', 'qa'], mode: 'enforce' });
      assert.equal(response.status, 200);
    });

    test('returns 400 naming pattern for a new pattern of the default policy', async () => {
      const response = await updatePolicy('default', { pattern: 'team/**' });
      assert.equal(response.status, 400);
      assert.deepEqual(problemFields(response), ['pattern']);
    });

    test('returns 400 for an empty body', async () => {
      const response = await updatePolicy('default', {});
      assert.equal(response.status, 400);
    });

    test('returns 400 for a new name', async () => {
      const response = await updatePolicy('default', { name: 'renamed' });
      assert.deepEqual(problemFields(response), ['body']);
    });

    test('returns 404 for an unknown policy', async () => {
      const response = await updatePolicy('nothing', { mode: 'dry-run' });
      assert.equal(response.status, 404);
    });

    test('records a policy.change event', async () => {
      await createPolicy({ name: 'updated', pattern: 'updated/**', requiredRoles: ['it'] });
      await updatePolicy('updated', { mode: 'dry-run' });
      const recorded = events.ofAction('policy.change').filter((event) => event.policy === 'updated' && event.change === 'update');
      assert.equal(recorded.length, 1);
    });
  });

  describe('DELETE /api/v1/policies/{name}', () => {
    test('returns 204 and the policy is gone', async () => {
      await createPolicy({ name: 'doomed', pattern: 'doomed/**', requiredRoles: ['it'] });
      const response = await apiRequest(server, 'delete', '/api/v1/policies/doomed', admin);
      assert.equal(response.status, 204);
      const after = await apiRequest(server, 'get', '/api/v1/policies/doomed', admin);
      assert.equal(after.status, 404);
    });

    test('repositories fall back to the default policy', async () => {
      await createPolicy({ name: 'fallback', pattern: 'fallback/**', requiredRoles: ['it'] });
      const repository = uniqueRepository('fallback');
      const digest = await pushImage(server, repository);
      await apiRequest(server, 'delete', '/api/v1/policies/fallback', admin);
      const response = await getStatus(server, reviewers.it, repository, digest);
      assert.equal(response.body.policy.name, 'default');
    });

    test('returns 409 for the default policy', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/policies/default', admin);
      assert.equal(response.status, 409);
      assert.equal(response.body.error.details.reason, 'default_policy');
    });

    test('returns 404 for an unknown policy', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/policies/nothing', admin);
      assert.equal(response.status, 404);
    });

    test('returns 403 for a reviewer', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/policies/default', reviewers.it);
      assert.equal(response.status, 403);
    });
  });
});
