import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import request from 'supertest';
import { basicAuthorization, createTestUser, startTestServer, type TestServer } from '../helpers/server.js';
import { assertDocumented } from '../helpers/openapi.js';

describe('openapi.yaml matches real responses', () => {
  let server: TestServer;
  let admin: string;
  let developer: string;
  let developerPassword: string;
  let http: ReturnType<typeof request>;

  before(async () => {
    server = await startTestServer();
    admin = server.adminAuthorization;
    const login = await createTestUser(server.db, 'developer');
    developer = basicAuthorization(login);
    developerPassword = login.password;
    http = request(server.url);
  });
  after(async () => {
    await server.close();
  });

  describe('operations', () => {
    for (const path of ['/healthz', '/readyz']) {
      test(`GET ${path} 200 matches its schema`, async () => {
        assertDocumented(path, 'get', await http.get(path));
      });
    }

    test('GET /readyz returns 503 when the database is gone', async () => {
      const second = await startTestServer({ shareWith: server });
      await second.db.destroy();
      const response = await request(second.url).get('/readyz');
      assert.equal(response.status, 503);
      assertDocumented('/readyz', 'get', response);
      await second.close().catch(() => {});
    });
  });

  describe('token service', () => {
    test('GET /token 200 anonymous matches its schema', async () => {
      const response = await http.get('/token').query({ service: 'portcullis', scope: 'repository:team-a/app:pull' });
      assert.equal(response.status, 200);
      assertDocumented('/token', 'get', response);
    });

    test('GET /token 200 with a refresh token matches its schema', async () => {
      const response = await http.get('/token').query({ service: 'portcullis', offline_token: 'true', client_id: 'test' }).set('Authorization', developer);
      assert.equal(typeof response.body.refresh_token, 'string');
      assertDocumented('/token', 'get', response);
    });

    test('GET /token 401 matches its schema', async () => {
      const response = await http.get('/token').set('Authorization', basicAuthorization({ username: 'developer', password: 'wrong-password' }));
      assert.equal(response.status, 401);
      assertDocumented('/token', 'get', response);
    });

    test('GET /token 400 for another service matches its schema', async () => {
      const response = await http.get('/token').query({ service: 'elsewhere' }).set('Authorization', developer);
      assert.equal(response.status, 400);
      assertDocumented('/token', 'get', response);
    });

    test('POST /token 200 for both grants matches its schema', async () => {
      const password = await http.post('/token').type('form').send({ grant_type: 'password', username: 'developer', password: developerPassword, access_type: 'offline', service: 'portcullis' });
      assertDocumented('/token', 'post', password);
      const refreshed = await http.post('/token').type('form').send({ grant_type: 'refresh_token', refresh_token: password.body.refresh_token, service: 'portcullis' });
      assert.equal(refreshed.status, 200);
      assertDocumented('/token', 'post', refreshed);
    });

    test('POST /token 400 for an unsupported grant matches its schema', async () => {
      const response = await http.post('/token').type('form').send({ grant_type: 'client_credentials' });
      assert.equal(response.status, 400);
      assertDocumented('/token', 'post', response);
    });

    test('GET /.well-known/jwks.json 200 matches its schema', async () => {
      const response = await http.get('/.well-known/jwks.json');
      assert.equal(response.status, 200);
      assertDocumented('/.well-known/jwks.json', 'get', response);
    });
  });

  describe('users', () => {
    const users = '/api/v1/users';
    const user = '/api/v1/users/{username}';
    const password = '/api/v1/users/{username}/password';

    test('POST /api/v1/users 201 matches its schema', async () => {
      const response = await http.post(users).set('Authorization', admin).send({ username: 'alice', password: 'correct-horse-battery', groups: ['qa'] });
      assert.equal(response.status, 201);
      assertDocumented(users, 'post', response);
    });

    test('POST /api/v1/users 400 matches its schema', async () => {
      const response = await http.post(users).set('Authorization', admin).send({ username: 'Alice', password: 'short' });
      assert.equal(response.status, 400);
      assertDocumented(users, 'post', response);
    });

    test('POST /api/v1/users 400 for malformed JSON matches its schema', async () => {
      const response = await http.post(users).set('Authorization', admin).set('Content-Type', 'application/json').send('{"username":');
      assert.equal(response.status, 400);
      assertDocumented(users, 'post', response);
    });

    test('POST /api/v1/users 401 matches its schema', async () => {
      const response = await http.post(users).send({ username: 'mallory', password: 'correct-horse-battery' });
      assert.equal(response.status, 401);
      assertDocumented(users, 'post', response);
    });

    test('POST /api/v1/users 403 matches its schema', async () => {
      const response = await http.post(users).set('Authorization', developer).send({ username: 'mallory', password: 'correct-horse-battery' });
      assert.equal(response.status, 403);
      assertDocumented(users, 'post', response);
    });

    test('POST /api/v1/users 409 matches its schema', async () => {
      const response = await http.post(users).set('Authorization', admin).send({ username: 'developer', password: 'correct-horse-battery' });
      assert.equal(response.status, 409);
      assertDocumented(users, 'post', response);
    });

    test('POST /api/v1/users 413 matches its schema', async () => {
      const response = await http.post(users).set('Authorization', admin).send({ username: 'huge', password: 'x'.repeat(70 * 1024) });
      assert.equal(response.status, 413);
      assertDocumented(users, 'post', response);
    });

    test('GET /api/v1/users 200 matches its schema', async () => {
      assertDocumented(users, 'get', await http.get(users).set('Authorization', admin));
    });

    test('GET /api/v1/users/{username} 200 and 404 match their schemas', async () => {
      assertDocumented(user, 'get', await http.get('/api/v1/users/alice').set('Authorization', admin));
      const missing = await http.get('/api/v1/users/ghost').set('Authorization', admin);
      assert.equal(missing.status, 404);
      assertDocumented(user, 'get', missing);
    });

    test('PATCH /api/v1/users/{username} 200 and 400 match their schemas', async () => {
      assertDocumented(user, 'patch', await http.patch('/api/v1/users/alice').set('Authorization', admin).send({ disabled: true, groups: ['it'] }));
      const invalid = await http.patch('/api/v1/users/alice').set('Authorization', admin).send({});
      assert.equal(invalid.status, 400);
      assertDocumented(user, 'patch', invalid);
    });

    test('PATCH /api/v1/users/{username} 409 matches its schema', async () => {
      const response = await http.patch('/api/v1/users/admin').set('Authorization', admin).send({ groups: [] });
      assert.equal(response.status, 409);
      assertDocumented(user, 'patch', response);
    });

    test('PUT /api/v1/users/{username}/password 204 matches its schema', async () => {
      const response = await http.put('/api/v1/users/alice/password').set('Authorization', admin).send({ password: 'another-long-password' });
      assert.equal(response.status, 204);
      assertDocumented(password, 'put', response);
    });

    test('PUT /api/v1/users/{username}/password 403 matches its schema', async () => {
      const response = await http.put('/api/v1/users/developer/password').set('Authorization', developer).send({ password: 'another-long-password', currentPassword: 'wrong-password' });
      assert.equal(response.status, 403);
      assertDocumented(password, 'put', response);
    });
  });

  describe('robots', () => {
    const robots = '/api/v1/robots';
    const robot = '/api/v1/robots/{name}';

    test('POST /api/v1/robots 201 matches its schema', async () => {
      const response = await http.post(robots).set('Authorization', admin).send({ name: 'ci', expiresAt: '2099-12-31T00:00:00+01:00' });
      assert.equal(response.status, 201);
      assertDocumented(robots, 'post', response);
    });

    test('POST /api/v1/robots 400 matches its schema', async () => {
      const response = await http.post(robots).set('Authorization', admin).send({ name: 'ci', expiresAt: 'soon' });
      assert.equal(response.status, 400);
      assertDocumented(robots, 'post', response);
    });

    test('GET /api/v1/robots 200 matches its schema', async () => {
      assertDocumented(robots, 'get', await http.get(robots).set('Authorization', admin));
    });

    test('GET /api/v1/robots/{name} 200 matches its schema', async () => {
      assertDocumented(robot, 'get', await http.get('/api/v1/robots/ci').set('Authorization', admin));
    });

    test('DELETE /api/v1/robots/{name} 204 and 404 match their schemas', async () => {
      assertDocumented(robot, 'delete', await http.delete('/api/v1/robots/ci').set('Authorization', admin));
      const missing = await http.delete('/api/v1/robots/ghost').set('Authorization', admin);
      assert.equal(missing.status, 404);
      assertDocumented(robot, 'delete', missing);
    });

    test('GET /api/v1/robots/{name} 200 for a revoked robot matches its schema', async () => {
      const response = await http.get('/api/v1/robots/ci').set('Authorization', admin);
      assert.equal(response.body.status, 'revoked');
      assertDocumented(robot, 'get', response);
    });
  });

  describe('groups', () => {
    const groups = '/api/v1/groups';
    const group = '/api/v1/groups/{name}';
    const member = '/api/v1/groups/{name}/members/{member}';

    test('POST /api/v1/groups 201 matches its schema', async () => {
      const response = await http.post(groups).set('Authorization', admin).send({ name: 'team-a', description: 'Team A' });
      assert.equal(response.status, 201);
      assertDocumented(groups, 'post', response);
    });

    test('GET /api/v1/groups 200 matches its schema', async () => {
      assertDocumented(groups, 'get', await http.get(groups).set('Authorization', admin));
    });

    test('PUT /api/v1/groups/{name}/members/{member} 204 matches its schema', async () => {
      const response = await http.put('/api/v1/groups/team-a/members/user:developer').set('Authorization', admin);
      assert.equal(response.status, 204);
      assertDocumented(member, 'put', response);
    });

    test('PUT /api/v1/groups/{name}/members/{member} 400 matches its schema', async () => {
      const response = await http.put('/api/v1/groups/team-a/members/developer').set('Authorization', admin);
      assert.equal(response.status, 400);
      assertDocumented(member, 'put', response);
    });

    test('GET /api/v1/groups/{name} 200 with members matches its schema', async () => {
      assertDocumented(group, 'get', await http.get('/api/v1/groups/team-a').set('Authorization', admin));
    });

    test('DELETE /api/v1/groups/{name}/members/{member} 204 and 404 match their schemas', async () => {
      assertDocumented(member, 'delete', await http.delete('/api/v1/groups/team-a/members/user:developer').set('Authorization', admin));
      const missing = await http.delete('/api/v1/groups/team-a/members/user:developer').set('Authorization', admin);
      assert.equal(missing.status, 404);
      assertDocumented(member, 'delete', missing);
    });

    test('DELETE /api/v1/groups/{name} 409 for a built-in group matches its schema', async () => {
      const response = await http.delete('/api/v1/groups/qa').set('Authorization', admin);
      assert.equal(response.status, 409);
      assertDocumented(group, 'delete', response);
    });

    test('DELETE /api/v1/groups/{name} 204 matches its schema', async () => {
      assertDocumented(group, 'delete', await http.delete('/api/v1/groups/team-a').set('Authorization', admin));
    });
  });

  describe('grants', () => {
    const grants = '/api/v1/grants';
    const grant = '/api/v1/grants/{id}';
    let id: number;

    test('POST /api/v1/grants 201 matches its schema', async () => {
      const response = await http.post(grants).set('Authorization', admin).send({ subject: 'user:developer', repositories: 'team-a/**', permissions: ['pull', 'push'] });
      assert.equal(response.status, 201);
      assertDocumented(grants, 'post', response);
      id = response.body.id as number;
    });

    test('POST /api/v1/grants 400 and 409 match their schemas', async () => {
      const invalid = await http.post(grants).set('Authorization', admin).send({ subject: 'user:developer', repositories: 'team-*', permissions: ['read'] });
      assert.equal(invalid.status, 400);
      assertDocumented(grants, 'post', invalid);
      const duplicate = await http.post(grants).set('Authorization', admin).send({ subject: 'user:developer', repositories: 'team-a/**', permissions: ['push', 'pull'] });
      assert.equal(duplicate.status, 409);
      assertDocumented(grants, 'post', duplicate);
    });

    test('GET /api/v1/grants 200 and 400 match their schemas', async () => {
      assertDocumented(grants, 'get', await http.get(grants).query({ subject: 'user:developer' }).set('Authorization', admin));
      const invalid = await http.get(grants).query({ subject: 'developer' }).set('Authorization', admin);
      assert.equal(invalid.status, 400);
      assertDocumented(grants, 'get', invalid);
    });

    test('GET /api/v1/grants/{id} 200 matches its schema', async () => {
      assertDocumented(grant, 'get', await http.get(`/api/v1/grants/${id}`).set('Authorization', admin));
    });

    test('DELETE /api/v1/grants/{id} 204 and 404 match their schemas', async () => {
      assertDocumented(grant, 'delete', await http.delete(`/api/v1/grants/${id}`).set('Authorization', admin));
      const missing = await http.delete(`/api/v1/grants/${id}`).set('Authorization', admin);
      assert.equal(missing.status, 404);
      assertDocumented(grant, 'delete', missing);
    });
  });

  test('GET /api/v1/users 429 matches its schema', async () => {
    const limited = await startTestServer({ auth: { maxFailuresPerUser: 1 } });
    const wrong = basicAuthorization({ username: 'admin', password: 'wrong-password' });
    await request(limited.url).get('/api/v1/users').set('Authorization', wrong);
    const response = await request(limited.url).get('/api/v1/users').set('Authorization', wrong);
    await limited.close();
    assert.equal(response.status, 429);
    assertDocumented('/api/v1/users', 'get', response);
  });
});
