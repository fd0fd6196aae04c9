import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { IdentityStore } from '../../src/auth/identity-store.js';
import { apiRequest, bearerAuthorization, errorCode, problemFields } from '../helpers/api.js';
import { basicAuthorization, createTestUser, startTestServer, type TestServer } from '../helpers/server.js';

const PASSWORD = 'correct-horse-battery';

describe('management API: users', () => {
  let server: TestServer;
  let admin: string;
  let developer: string;
  const logLines: string[] = [];

  before(async () => {
    const logStream = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        logLines.push(chunk.toString('utf8'));
        callback();
      },
    });
    server = await startTestServer({ logger: pino({ level: 'debug' }, logStream) });
    admin = server.adminAuthorization;
    developer = basicAuthorization(await createTestUser(server.db, 'developer'));
  });
  after(() => server.close());

  function createUser(body: object, authorization: string | null = admin) {
    return apiRequest(server, 'post', '/api/v1/users', authorization ?? undefined).send(body);
  }

  describe('POST /api/v1/users', () => {
    test('returns 201 for a valid user', async () => {
      const response = await createUser({ username: 'alice', password: PASSWORD, groups: ['qa'] });
      assert.equal(response.status, 201);
    });

    test('returns the user with its groups', async () => {
      const response = await createUser({ username: 'alice-groups', password: PASSWORD, groups: ['qa', 'it'] });
      assert.equal(response.body.username, 'alice-groups');
      assert.deepEqual(response.body.groups, ['it', 'qa']);
    });

    test('returns no password and no hash', async () => {
      const response = await createUser({ username: 'no-hash', password: PASSWORD });
      assert.doesNotMatch(response.text, /scrypt|correct-horse|"password/);
    });

    test('sends the Location of the user', async () => {
      const response = await createUser({ username: 'located', password: PASSWORD });
      assert.equal(response.headers.location, '/api/v1/users/located');
    });

    test('stores a password that authenticates', async () => {
      await createUser({ username: 'can-login', password: PASSWORD });
      const principal = await new IdentityStore(server.db).authenticate('can-login', PASSWORD);
      assert.equal(principal?.subject, 'can-login');
    });

    test('returns 201 with a Bearer token', async () => {
      const bearer = await bearerAuthorization(server, admin);
      const response = await createUser({ username: 'by-token', password: PASSWORD }, bearer);
      assert.equal(response.status, 201);
    });

    test('returns 401 without credentials', async () => {
      const response = await createUser({ username: 'anonymous-made', password: PASSWORD }, null);
      assert.equal(response.status, 401);
    });

    test('sends a Basic challenge with 401', async () => {
      const response = await createUser({ username: 'anonymous-made', password: PASSWORD }, null);
      assert.equal(response.headers['www-authenticate'], 'Basic realm="Portcullis"');
    });

    test('returns UNAUTHORIZED in the error envelope', async () => {
      const response = await createUser({ username: 'anonymous-made', password: PASSWORD }, null);
      assert.equal(errorCode(response), 'UNAUTHORIZED');
    });

    test('returns 401 for a wrong password', async () => {
      const response = await createUser({ username: 'wrong-login', password: PASSWORD }, basicAuthorization({ username: 'admin', password: 'not-the-password' }));
      assert.equal(response.status, 401);
    });

    test('returns 401 for an invalid Bearer token', async () => {
      const response = await createUser({ username: 'bad-token', password: PASSWORD }, 'Bearer not.a.token');
      assert.equal(response.status, 401);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await createUser({ username: 'by-developer', password: PASSWORD }, developer);
      assert.equal(response.status, 403);
    });

    test('returns FORBIDDEN in the error envelope', async () => {
      const response = await createUser({ username: 'by-developer', password: PASSWORD }, developer);
      assert.equal(errorCode(response), 'FORBIDDEN');
    });

    test('returns 400 for a short password', async () => {
      const response = await createUser({ username: 'short', password: 'short' });
      assert.equal(response.status, 400);
    });

    test('names the password field for a short password', async () => {
      const response = await createUser({ username: 'short', password: 'short' });
      assert.deepEqual(problemFields(response), ['password']);
    });

    test('returns 400 for an invalid username', async () => {
      const response = await createUser({ username: 'Bad Name', password: PASSWORD });
      assert.deepEqual(problemFields(response), ['username']);
    });

    test('returns 400 for a robot$ username', async () => {
      const response = await createUser({ username: 'robot$sneaky', password: PASSWORD });
      assert.equal(response.status, 400);
    });

    test('returns 400 for a missing password', async () => {
      const response = await createUser({ username: 'no-password' });
      assert.deepEqual(problemFields(response), ['password']);
    });

    test('returns 400 for an unknown field', async () => {
      const response = await createUser({ username: 'extra', password: PASSWORD, admin: true });
      assert.equal(response.status, 400);
    });

    test('returns 400 for an unknown group', async () => {
      const response = await createUser({ username: 'ungrouped', password: PASSWORD, groups: ['nope'] });
      assert.deepEqual(problemFields(response), ['groups']);
    });

    test('returns 400 for malformed JSON', async () => {
      const response = await apiRequest(server, 'post', '/api/v1/users', admin).set('Content-Type', 'application/json').send('{"username": "broken", "password": "hunter2-secret"');
      assert.equal(response.status, 400);
    });

    test('returns INVALID_REQUEST for malformed JSON', async () => {
      const response = await apiRequest(server, 'post', '/api/v1/users', admin).set('Content-Type', 'application/json').send('{"username": ');
      assert.equal(errorCode(response), 'INVALID_REQUEST');
    });

    test('does not echo malformed JSON', async () => {
      const response = await apiRequest(server, 'post', '/api/v1/users', admin).set('Content-Type', 'application/json').send('{"password": "hunter2-secret"');
      assert.doesNotMatch(response.text, /hunter2/);
    });

    test('returns 400 for a body that is not JSON', async () => {
      const response = await apiRequest(server, 'post', '/api/v1/users', admin).set('Content-Type', 'text/plain').send('username=alice');
      assert.equal(response.status, 400);
    });

    test('returns 413 for a body over 64 KiB', async () => {
      const response = await createUser({ username: 'huge', password: 'x'.repeat(70 * 1024) });
      assert.equal(response.status, 413);
    });

    test('returns 409 for a duplicate username', async () => {
      await createUser({ username: 'taken', password: PASSWORD });
      const response = await createUser({ username: 'taken', password: PASSWORD });
      assert.equal(response.status, 409);
    });

    test('returns CONFLICT in the error envelope', async () => {
      const response = await createUser({ username: 'admin', password: PASSWORD });
      assert.equal(errorCode(response), 'CONFLICT');
    });
  });

  describe('GET /api/v1/users', () => {
    test('returns 200 with every user', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/users', admin);
      const usernames = (response.body.users as Array<{ username: string }>).map((user) => user.username);
      assert.ok(usernames.includes('admin'), usernames.join(', '));
      assert.ok(usernames.includes('developer'), usernames.join(', '));
    });

    test('returns no hash', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/users', admin);
      assert.doesNotMatch(response.text, /scrypt/);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/users', developer);
      assert.equal(response.status, 403);
    });

    test('returns 401 without credentials', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/users');
      assert.equal(response.status, 401);
    });

    test('forbids caching', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/users', admin);
      assert.equal(response.headers['cache-control'], 'no-store');
    });
  });

  describe('GET /api/v1/users/{username}', () => {
    test('returns 200 with the user', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/users/developer', admin);
      assert.equal(response.body.username, 'developer');
    });

    test('returns 404 for an unknown user', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/users/ghost', admin);
      assert.equal(response.status, 404);
    });

    test('returns NOT_FOUND in the error envelope', async () => {
      const response = await apiRequest(server, 'get', '/api/v1/users/ghost', admin);
      assert.equal(errorCode(response), 'NOT_FOUND');
    });
  });

  describe('PATCH /api/v1/users/{username}', () => {
    test('returns 200 with the disabled user', async () => {
      await createUser({ username: 'to-disable', password: PASSWORD });
      const response = await apiRequest(server, 'patch', '/api/v1/users/to-disable', admin).send({ disabled: true });
      assert.equal(response.body.disabled, true);
    });

    test('disabled user gets 401', async () => {
      const login = await createTestUser(server.db, 'disabled-caller', ['admins']);
      await apiRequest(server, 'patch', '/api/v1/users/disabled-caller', admin).send({ disabled: true });
      const response = await apiRequest(server, 'get', '/api/v1/users', basicAuthorization(login));
      assert.equal(response.status, 401);
    });

    test('disabled user token gets 401', async () => {
      const login = await createTestUser(server.db, 'disabled-token', ['admins']);
      const bearer = await bearerAuthorization(server, basicAuthorization(login));
      await apiRequest(server, 'patch', '/api/v1/users/disabled-token', admin).send({ disabled: true });
      const response = await apiRequest(server, 'get', '/api/v1/users', bearer);
      assert.equal(response.status, 401);
    });

    test('enabled user authenticates again', async () => {
      const login = await createTestUser(server.db, 'reenabled', ['admins']);
      await apiRequest(server, 'patch', '/api/v1/users/reenabled', admin).send({ disabled: true });
      await apiRequest(server, 'patch', '/api/v1/users/reenabled', admin).send({ disabled: false });
      const response = await apiRequest(server, 'get', '/api/v1/users', basicAuthorization(login));
      assert.equal(response.status, 200);
    });

    test('replaces the groups', async () => {
      await createUser({ username: 'regrouped', password: PASSWORD, groups: ['it'] });
      const response = await apiRequest(server, 'patch', '/api/v1/users/regrouped', admin).send({ groups: ['security', 'qa'] });
      assert.deepEqual(response.body.groups, ['qa', 'security']);
    });

    test('returns 400 for an empty body', async () => {
      const response = await apiRequest(server, 'patch', '/api/v1/users/developer', admin).send({});
      assert.equal(response.status, 400);
    });

    test('returns 400 for a non-boolean disabled', async () => {
      const response = await apiRequest(server, 'patch', '/api/v1/users/developer', admin).send({ disabled: 'yes' });
      assert.deepEqual(problemFields(response), ['disabled']);
    });

    test('returns 404 for an unknown user', async () => {
      const response = await apiRequest(server, 'patch', '/api/v1/users/ghost', admin).send({ disabled: true });
      assert.equal(response.status, 404);
    });

    test('returns 403 for a user without admin', async () => {
      const response = await apiRequest(server, 'patch', '/api/v1/users/developer', developer).send({ groups: ['admins'] });
      assert.equal(response.status, 403);
    });

    test('returns 409 when no administrator would remain', async () => {
      const lone = await startTestServer();
      const response = await apiRequest(lone, 'patch', '/api/v1/users/admin', lone.adminAuthorization).send({ disabled: true });
      await lone.close();
      assert.equal(response.status, 409);
    });
  });

  describe('PUT /api/v1/users/{username}/password', () => {
    test('returns 204 when an administrator sets a password', async () => {
      await createTestUser(server.db, 'reset-by-admin');
      const response = await apiRequest(server, 'put', '/api/v1/users/reset-by-admin/password', admin).send({ password: 'new-long-password' });
      assert.equal(response.status, 204);
    });

    test('new password set by an administrator works', async () => {
      await createTestUser(server.db, 'reset-works');
      await apiRequest(server, 'put', '/api/v1/users/reset-works/password', admin).send({ password: 'new-long-password' });
      const response = await apiRequest(server, 'get', '/api/v1/users/reset-works', basicAuthorization({ username: 'reset-works', password: 'new-long-password' }));
      assert.equal(response.status, 403, 'the new password authenticates; the user lacks admin');
    });

    test('returns 204 when a user changes its own password', async () => {
      const login = await createTestUser(server.db, 'self-change');
      const response = await apiRequest(server, 'put', '/api/v1/users/self-change/password', basicAuthorization(login)).send({ password: 'new-long-password', currentPassword: login.password });
      assert.equal(response.status, 204);
    });

    test('old password gets 401 after a change', async () => {
      const login = await createTestUser(server.db, 'old-rejected');
      await apiRequest(server, 'put', '/api/v1/users/old-rejected/password', basicAuthorization(login)).send({ password: 'new-long-password', currentPassword: login.password });
      const response = await apiRequest(server, 'put', '/api/v1/users/old-rejected/password', basicAuthorization(login)).send({ password: 'newer-long-password', currentPassword: login.password });
      assert.equal(response.status, 401);
    });

    test('returns 204 for an own change with a Bearer token', async () => {
      const login = await createTestUser(server.db, 'self-token');
      const bearer = await bearerAuthorization(server, basicAuthorization(login));
      const response = await apiRequest(server, 'put', '/api/v1/users/self-token/password', bearer).send({ password: 'new-long-password', currentPassword: login.password });
      assert.equal(response.status, 204);
    });

    test('returns 400 for an own change without currentPassword', async () => {
      const login = await createTestUser(server.db, 'self-no-current');
      const response = await apiRequest(server, 'put', '/api/v1/users/self-no-current/password', basicAuthorization(login)).send({ password: 'new-long-password' });
      assert.deepEqual(problemFields(response), ['currentPassword']);
    });

    test('returns 403 for an own change with a wrong currentPassword', async () => {
      const bearer = await bearerAuthorization(server, basicAuthorization(await createTestUser(server.db, 'self-wrong')));
      const response = await apiRequest(server, 'put', '/api/v1/users/self-wrong/password', bearer).send({ password: 'new-long-password', currentPassword: 'not-the-password' });
      assert.equal(response.status, 403);
    });

    test('returns 400 for a short new password', async () => {
      const login = await createTestUser(server.db, 'self-short');
      const response = await apiRequest(server, 'put', '/api/v1/users/self-short/password', basicAuthorization(login)).send({ password: 'short', currentPassword: login.password });
      assert.deepEqual(problemFields(response), ['password']);
    });

    test("returns 403 for another user's password without admin", async () => {
      const response = await apiRequest(server, 'put', '/api/v1/users/admin/password', developer).send({ password: 'new-long-password', currentPassword: 'developer-password' });
      assert.equal(response.status, 403);
    });

    test('returns 404 for an unknown user', async () => {
      const response = await apiRequest(server, 'put', '/api/v1/users/ghost/password', admin).send({ password: 'new-long-password' });
      assert.equal(response.status, 404);
    });

    test('returns 401 without credentials', async () => {
      const response = await apiRequest(server, 'put', '/api/v1/users/developer/password').send({ password: 'new-long-password' });
      assert.equal(response.status, 401);
    });
  });

  describe('login rate limit', () => {
    let limited: TestServer;
    let response: Awaited<ReturnType<typeof apiRequest>>;

    before(async () => {
      limited = await startTestServer({ auth: { maxFailuresPerUser: 1 } });
      const wrong = basicAuthorization({ username: 'admin', password: 'not-the-password' });
      await apiRequest(limited, 'get', '/api/v1/users', wrong);
      response = await apiRequest(limited, 'get', '/api/v1/users', wrong);
    });
    after(() => limited.close());

    test('returns 429 after too many failed logins', () => {
      assert.equal(response.status, 429);
    });

    test('returns TOO_MANY_REQUESTS in the error envelope', () => {
      assert.equal(errorCode(response), 'TOO_MANY_REQUESTS');
    });

    test('sends Retry-After with 429', () => {
      assert.match(String(response.headers['retry-after']), /^[1-9][0-9]*$/);
    });
  });

  test('unknown API path returns 404 with the envelope', async () => {
    const response = await apiRequest(server, 'get', '/api/v1/nothing-here', admin);
    assert.equal(errorCode(response), 'NOT_FOUND');
  });

  test('logs never contain a password', async () => {
    await createUser({ username: 'logged-user', password: 'log-canary-password-1' });
    await apiRequest(server, 'put', '/api/v1/users/logged-user/password', admin).send({ password: 'log-canary-password-2' });
    await apiRequest(server, 'put', '/api/v1/users/logged-user/password', basicAuthorization({ username: 'logged-user', password: 'log-canary-password-2' })).send({
      password: 'log-canary-password-3',
      currentPassword: 'log-canary-password-wrong',
    });
    assert.ok(logLines.length > 0, 'the server logged nothing, so the check proves nothing');
    assert.equal(logLines.filter((line) => line.includes('log-canary')).length, 0);
  });
});
