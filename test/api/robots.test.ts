import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { apiRequest, errorCode, problemFields } from '../helpers/api.js';
import { basicAuthorization, createTestRobot, createTestUser, startTestServer, type TestServer } from '../helpers/server.js';

describe('management API: robots', () => {
  let server: TestServer;
  let admin: string;
  let developer: string;

  before(async () => {
    server = await startTestServer();
    admin = server.adminAuthorization;
    developer = basicAuthorization(await createTestUser(server.db, 'developer'));
  });
  after(() => server.close());

  function createRobot(body: object, authorization: string | null = admin) {
    return apiRequest(server, 'post', '/api/v1/robots', authorization ?? undefined).send(body);
  }

  function tokenFor(login: { username: string; password: string }) {
    return request(server.url).get('/token').query({ service: 'portcullis' }).set('Authorization', basicAuthorization(login));
  }

  describe('POST /api/v1/robots', () => {
    test('returns 201 with the name and secret', async () => {
      const response = await createRobot({ name: 'ci' });
      assert.equal(response.status, 201);
      assert.equal(response.body.name, 'ci');
      assert.match(response.body.secret as string, /^[A-Za-z0-9_-]{43}$/);
    });

    test('returns the login name', async () => {
      const response = await createRobot({ name: 'login-named' });
      assert.equal(response.body.loginName, 'robot$login-named');
    });

    test('returns a secret that gets a token', async () => {
      const created = await createRobot({ name: 'token-robot' });
      const response = await tokenFor({ username: 'robot$token-robot', password: created.body.secret as string });
      assert.equal(response.status, 200);
    });

    test('returns the expiry', async () => {
      const response = await createRobot({ name: 'expiring', expiresAt: '2099-01-31T00:00:00Z' });
      assert.equal(response.body.expiresAt, '2099-01-31T00:00:00.000Z');
    });

    test('records the creator', async () => {
      const response = await createRobot({ name: 'attributed' });
      assert.equal(response.body.createdBy, 'admin');
    });

    test('returns 400 for an expiry in the past', async () => {
      const response = await createRobot({ name: 'stale', expiresAt: '2000-01-01T00:00:00Z' });
      assert.deepEqual(problemFields(response), ['expiresAt']);
    });

    test('returns 400 for an expiry that is no date', async () => {
      const response = await createRobot({ name: 'undated', expiresAt: 'next week' });
      assert.deepEqual(problemFields(response), ['expiresAt']);
    });

    test('returns 400 for an invalid name', async () => {
      const response = await createRobot({ name: 'robot$ci' });
      assert.deepEqual(problemFields(response), ['name']);
    });

    test('returns 400 for a missing name', async () => {
      const response = await createRobot({});
      assert.equal(response.status, 400);
    });

    test('returns 409 for a duplicate name', async () => {
      await createRobot({ name: 'twin' });
      const response = await createRobot({ name: 'twin' });
      assert.equal(response.status, 409);
    });

    test('returns 401 without credentials', async () => {
      const response = await createRobot({ name: 'anonymous-robot' }, null);
      assert.equal(response.status, 401);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await createRobot({ name: 'developer-robot' }, developer);
      assert.equal(response.status, 403);
    });

    test('returns 403 for a robot without admin', async () => {
      const robot = await createTestRobot(server.db, 'pusher', [{ pattern: 'team/**', permissions: ['push'] }]);
      const response = await createRobot({ name: 'robot-made' }, basicAuthorization(robot));
      assert.equal(response.status, 403);
    });
  });

  describe('GET /api/v1/robots', () => {
    test('returns 200 with every robot', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/robots', admin);
      const names = (response.body.robots as Array<{ name: string }>).map((robot) => robot.name);
      assert.ok(names.includes('ci'), names.join(', '));
    });

    test('returns no secret and no hash', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/robots', admin);
      assert.doesNotMatch(response.text, /secret|scrypt/i);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/robots', developer);
      assert.equal(response.status, 403);
    });
  });

  describe('GET /api/v1/robots/{name}', () => {
    test('returns 200 without the secret', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/robots/ci', admin);
      assert.equal(response.status, 200);
      assert.equal(response.body.secret, undefined);
    });

    test('returns 404 for an unknown robot', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/robots/ghost', admin);
      assert.equal(errorCode(response), 'NOT_FOUND');
    });
  });

  describe('DELETE /api/v1/robots/{name}', () => {
    test('returns 204', async () => {
      await createRobot({ name: 'to-revoke' });
      const response = await apiRequest(server, 'delete', '/api/v1/robots/to-revoke', admin);
      assert.equal(response.status, 204);
    });

    test('shows the robot as revoked', async () => {
      await createRobot({ name: 'shown-revoked' });
      await apiRequest(server, 'delete', '/api/v1/robots/shown-revoked', admin);
      const response = await apiRequest(server, 'get', '/api/v1/robots/shown-revoked', admin);
      assert.equal(response.body.status, 'revoked');
    });

    test('revoked robot gets 401 from /token', async () => {
      const created = await createRobot({ name: 'revoked-login' });
      await apiRequest(server, 'delete', '/api/v1/robots/revoked-login', admin);
      const response = await tokenFor({ username: 'robot$revoked-login', password: created.body.secret as string });
      assert.equal(response.status, 401);
    });

    test('returns 204 for a revoked robot', async () => {
      await createRobot({ name: 'revoked-twice' });
      await apiRequest(server, 'delete', '/api/v1/robots/revoked-twice', admin);
      const response = await apiRequest(server, 'delete', '/api/v1/robots/revoked-twice', admin);
      assert.equal(response.status, 204);
    });

    test('returns 404 for an unknown robot', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/robots/ghost', admin);
      assert.equal(response.status, 404);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/robots/ci', developer);
      assert.equal(response.status, 403);
    });

    test('returns 401 without credentials', async () => {
      const response = await apiRequest(server, 'delete', '/api/v1/robots/ci');
      assert.equal(response.status, 401);
    });
  });
});
