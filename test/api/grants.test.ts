import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { apiRequest, errorCode, problemFields } from '../helpers/api.js';
import { decodeJwt } from '../helpers/auth.js';
import { basicAuthorization, createTestRobot, createTestUser, startTestServer, type TestServer } from '../helpers/server.js';

describe('management API: grants', () => {
  let server: TestServer;
  let admin: string;
  let developerLogin: { username: string; password: string };
  let developer: string;

  before(async () => {
    server = await startTestServer();
    admin = server.adminAuthorization;
    developerLogin = await createTestUser(server.db, 'developer');
    developer = basicAuthorization(developerLogin);
    await createTestRobot(server.db, 'builder', []);
  });
  after(() => server.close());

  function createGrant(body: object, authorization: string | null = admin) {
    return apiRequest(server, 'post', '/api/v1/grants', authorization ?? undefined).send(body);
  }

  describe('POST /api/v1/grants', () => {
    test('returns 201 with the grant', async () => {
      const response = await createGrant({ subject: 'user:developer', repositories: 'team-a/**', permissions: ['push', 'pull'] });
      assert.equal(response.status, 201);
      assert.equal(response.body.subject, 'user:developer');
      assert.equal(response.body.repositories, 'team-a/**');
      assert.deepEqual(response.body.permissions, ['pull', 'push']);
    });

    test('sends the Location of the grant', async () => {
      const response = await createGrant({ subject: 'robot:builder', repositories: 'located/*', permissions: ['push'] });
      assert.equal(response.headers.location, `/api/v1/grants/${response.body.id}`);
    });

    test('takes effect on the next token', async () => {
      await createGrant({ subject: 'user:developer', repositories: 'effective/**', permissions: ['pull'] });
      const response = await request(server.url).get('/token').query({ service: 'portcullis', scope: 'repository:effective/app:pull' }).set('Authorization', developer);
      assert.deepEqual(decodeJwt(response.body.token as string).payload.access, [{ type: 'repository', name: 'effective/app', actions: ['pull'] }]);
    });

    test('accepts a global permission on **', async () => {
      const response = await createGrant({ subject: 'robot:builder', repositories: '**', permissions: ['audit:read'] });
      assert.equal(response.status, 201);
    });

    test('returns 400 for an invalid pattern', async () => {
      const response = await createGrant({ subject: 'user:developer', repositories: 'team-*', permissions: ['pull'] });
      assert.deepEqual(problemFields(response), ['repositories']);
    });

    test('returns 400 for a pattern with a registry host', async () => {
      const response = await createGrant({ subject: 'user:developer', repositories: 'docker.io/**', permissions: ['pull'] });
      assert.deepEqual(problemFields(response), ['repositories']);
    });

    test('returns 400 for an unknown permission', async () => {
      const response = await createGrant({ subject: 'user:developer', repositories: 'team-a/**', permissions: ['read'] });
      assert.deepEqual(problemFields(response), ['permissions']);
    });

    test('returns 400 for a global permission on a narrow pattern', async () => {
      const response = await createGrant({ subject: 'user:developer', repositories: 'team-a/**', permissions: ['admin'] });
      assert.deepEqual(problemFields(response), ['permissions']);
    });

    test('returns 400 for no permissions', async () => {
      const response = await createGrant({ subject: 'user:developer', repositories: 'team-a/**', permissions: [] });
      assert.deepEqual(problemFields(response), ['permissions']);
    });

    test('returns 400 for a malformed subject', async () => {
      const response = await createGrant({ subject: 'developer', repositories: 'team-a/**', permissions: ['pull'] });
      assert.deepEqual(problemFields(response), ['subject']);
    });

    test('returns 400 for an unknown subject', async () => {
      const response = await createGrant({ subject: 'group:ghost', repositories: 'team-a/**', permissions: ['pull'] });
      assert.deepEqual(problemFields(response), ['subject']);
    });

    test('returns 400 for a missing field', async () => {
      const response = await createGrant({ subject: 'user:developer', permissions: ['pull'] });
      assert.deepEqual(problemFields(response), ['repositories']);
    });

    test('returns 409 for an identical grant', async () => {
      await createGrant({ subject: 'user:developer', repositories: 'twice/**', permissions: ['pull'] });
      const response = await createGrant({ subject: 'user:developer', repositories: 'twice/**', permissions: ['pull'] });
      assert.equal(response.status, 409);
    });

    test('returns 401 without credentials', async () => {
      const response = await createGrant({ subject: 'user:developer', repositories: 'team-a/**', permissions: ['pull'] }, null);
      assert.equal(response.status, 401);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await createGrant({ subject: 'user:developer', repositories: '**', permissions: ['admin'] }, developer);
      assert.equal(response.status, 403);
    });
  });

  describe('GET /api/v1/grants', () => {
    test('returns 200 with every grant', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/grants', admin);
      assert.ok((response.body.grants as unknown[]).length >= 3);
    });

    test('filters by subject', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/grants', admin).query({ subject: 'robot:builder' });
      const subjects = new Set((response.body.grants as Array<{ subject: string }>).map((grant) => grant.subject));
      assert.deepEqual([...subjects], ['robot:builder']);
    });

    test('filters by repository', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/grants', admin).query({ repository: 'team-a/app' });
      const patterns = (response.body.grants as Array<{ repositories: string }>).map((grant) => grant.repositories);
      assert.ok(patterns.includes('team-a/**'), patterns.join(', '));
      assert.ok(!patterns.includes('located/*'), patterns.join(', '));
    });

    test('returns 400 for a malformed subject filter', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/grants', admin).query({ subject: 'developer' });
      assert.deepEqual(problemFields(response), ['subject']);
    });

    test('returns 400 for an unknown filter', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/grants', admin).query({ owner: 'developer' });
      assert.equal(response.status, 400);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/grants', developer);
      assert.equal(response.status, 403);
    });
  });

  describe('GET /api/v1/grants/{id}', () => {
    test('returns 200 with the grant', async () => {
      const created = await createGrant({ subject: 'user:developer', repositories: 'shown/**', permissions: ['pull'] });
      const response = await apiRequest(server, 'get', `/api/v1/grants/${created.body.id}`, admin);
      assert.deepEqual(response.body, created.body);
    });

    test('returns 404 for an id that is no number', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/grants/abc', admin);
      assert.equal(errorCode(response), 'NOT_FOUND');
    });
  });

  describe('DELETE /api/v1/grants/{id}', () => {
    test('returns 204', async () => {
      const created = await createGrant({ subject: 'user:developer', repositories: 'deleted/**', permissions: ['pull'] });
      const response = await apiRequest(server, 'delete', `/api/v1/grants/${created.body.id}`, admin);
      assert.equal(response.status, 204);
    });

    test('removes the permission from the next token', async () => {
      const created = await createGrant({ subject: 'user:developer', repositories: 'revoked/**', permissions: ['pull'] });
      await apiRequest(server, 'delete', `/api/v1/grants/${created.body.id}`, admin);
      const response = await request(server.url).get('/token').query({ service: 'portcullis', scope: 'repository:revoked/app:pull' }).set('Authorization', developer);
      assert.deepEqual(decodeJwt(response.body.token as string).payload.access, []);
    });

    test('returns 404 for an unknown id', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/grants/999999', admin);
      assert.equal(response.status, 404);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/grants/1', developer);
      assert.equal(response.status, 403);
    });

    test('returns 401 without credentials', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/grants/1');
      assert.equal(response.status, 401);
    });
  });
});
