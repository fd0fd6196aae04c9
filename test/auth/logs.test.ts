/**
 * Secrets never reach a log line. A server logs at level trace through the
 * process logger into memory while clients log in, fail to log in, fetch and
 * refresh tokens, push with Basic credentials and Bearer tokens, and send
 * credentials in query strings. Afterwards no captured line may contain a
 * password, a robot secret, a token or Basic credentials.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createLogger } from '../../src/logger.js';
import { bearerAuthorization, fetchToken, postTokenForm, registryRequest, requestToken, type Login } from '../helpers/auth.js';
import { RegistryClient } from '../helpers/registry-client.js';
import { basicAuthorization, createTestRobot, createTestUser, grantToUser, startTestServer, TEST_ADMIN, type TestServer } from '../helpers/server.js';

/** Matches an Authorization value with Basic credentials, whatever the case of the scheme. */
const BASIC_CREDENTIALS = /basic\s+[A-Za-z0-9+/]{8,}={0,2}/i;

describe('logs at level trace', () => {
  const lines: string[] = [];
  const accessTokens: string[] = [];
  const refreshTokens: string[] = [];
  const wrongPasswords = ['admin-typo-password', 'user-typo-password', 'robot-typo-secret'];
  let server: TestServer;
  let user: Login;
  let robot: Login;

  before(async () => {
    const logger = createLogger('trace', { write: (line: string) => lines.push(line) });
    server = await startTestServer({ logger, auth: { maxFailuresPerUser: 2 } });
    user = await createTestUser(server.db, 'logged-user', [], 'user-password-4f1c8e');
    await grantToUser(server.db, user.username, 'team-a/**', ['pull', 'push', 'delete']);
    robot = await createTestRobot(server.db, 'logged-robot', [{ pattern: 'team-a/**', permissions: ['pull', 'push'] }], 'robot-secret-9b2d7a');

    // Challenge, then logins with GET /token, with and without a refresh token.
    await registryRequest(server.url, 'get', '/v2/', null);
    const adminToken = await fetchToken(server.url, server.admin, ['repository:team-a/app:pull,push', 'registry:catalog:*'], { offline_token: 'true', client_id: 'log-test' });
    const robotToken = await fetchToken(server.url, robot, ['repository:team-a/app:pull,push']);
    accessTokens.push(adminToken.token, robotToken.token);
    refreshTokens.push(adminToken.refresh_token ?? '');

    // POST /token with a password, then with the refresh token.
    const passwordGrant = await postTokenForm(server.url, {
      grant_type: 'password',
      username: user.username,
      password: user.password,
      service: 'portcullis',
      client_id: 'log-test',
      access_type: 'offline',
      scope: 'repository:team-a/app:pull,push',
    });
    accessTokens.push(passwordGrant.body.access_token);
    refreshTokens.push(passwordGrant.body.refresh_token);
    const refreshGrant = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: passwordGrant.body.refresh_token, service: 'portcullis', scope: 'repository:team-a/app:pull' });
    accessTokens.push(refreshGrant.body.access_token);

    // Failed logins on every path, and one login past the failure limit.
    await requestToken(server.url, { username: TEST_ADMIN.username, password: wrongPasswords[0] as string }, []);
    await registryRequest(server.url, 'get', '/v2/', basicAuthorization({ username: user.username, password: wrongPasswords[1] as string }));
    await postTokenForm(server.url, { grant_type: 'password', username: robot.username, password: wrongPasswords[2] as string, service: 'portcullis' });
    await requestToken(server.url, { username: TEST_ADMIN.username, password: wrongPasswords[0] as string }, []);
    await requestToken(server.url, server.admin, []);

    // Pushes with Basic credentials, and requests with Bearer tokens, one of them rejected.
    await new RegistryClient(server.url, user).pushImage('team-a/app', 'v1');
    await new RegistryClient(server.url, robot).pushImage('team-a/robot-app', 'v1');
    await registryRequest(server.url, 'post', '/v2/team-a/app/blobs/uploads/', bearerAuthorization(robotToken.token));
    await registryRequest(server.url, 'get', '/v2/_catalog', bearerAuthorization(adminToken.token));
    await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', bearerAuthorization(adminToken.refresh_token ?? ''));
    await registryRequest(server.url, 'delete', '/v2/team-a/app/manifests/v1', bearerAuthorization(refreshGrant.body.access_token));

    // Credentials in query strings, where no endpoint reads them.
    await registryRequest(server.url, 'post', `/token?grant_type=password&username=${user.username}&password=${user.password}&service=portcullis`, null);
    await registryRequest(server.url, 'get', `/token?service=portcullis&refresh_token=${adminToken.refresh_token ?? ''}`, null);
    await registryRequest(server.url, 'get', `/v2/team-a/app/tags/list?access_token=${adminToken.token}`, null);
    await registryRequest(server.url, 'get', `/v2/team-a/app/tags/list?n=10&Token=${robotToken.token}&last=a`, null);

    // pino-http writes a request's line when the response finishes, which can follow the client's read.
    await delay(200);
  });
  after(() => server.close());

  /** Returns the captured lines that contain the text. */
  function linesContaining(text: string): string[] {
    return lines.filter((line) => line.includes(text));
  }

  test('captures request lines of the token endpoint and /v2', () => {
    assert.ok(linesContaining('"auth.token.get"').length > 0, 'no line of GET /token');
    assert.ok(linesContaining('"auth.token.post"').length > 0, 'no line of POST /token');
    assert.ok(linesContaining('"registry.upload.start"').length > 0, 'no line of a push');
  });

  test('captures trace and debug lines', () => {
    assert.ok(lines.some((line) => /"level":(10|20),/.test(line)), 'no line below info');
  });

  test('no line contains the admin password', () => {
    assert.deepEqual(linesContaining(TEST_ADMIN.password), []);
  });

  test('no line contains the user password', () => {
    assert.deepEqual(linesContaining(user.password), []);
  });

  test('no line contains the robot secret', () => {
    assert.deepEqual(linesContaining(robot.password), []);
  });

  test('no line contains a mistyped password', () => {
    assert.deepEqual(wrongPasswords.flatMap(linesContaining), []);
  });

  test('no line contains an access token', () => {
    assert.equal(accessTokens.length, 4);
    assert.deepEqual(accessTokens.flatMap(linesContaining), []);
  });

  test('no line contains the signature of an access token', () => {
    assert.deepEqual(accessTokens.map((token) => token.split('.')[2] as string).flatMap(linesContaining), []);
  });

  test('no line contains the start of a token payload', () => {
    // A URL cut to its maximum length would still carry the first part of a token.
    const payloadStarts = [...accessTokens, ...refreshTokens].map((token) => (token.split('.')[1] as string).slice(0, 64));
    assert.deepEqual(payloadStarts.flatMap(linesContaining), []);
  });

  test('no line contains a refresh token', () => {
    assert.equal(refreshTokens.filter((token) => token.length > 0).length, 2);
    assert.deepEqual(refreshTokens.flatMap(linesContaining), []);
  });

  test('no line contains Basic credentials', () => {
    assert.deepEqual(
      lines.filter((line) => BASIC_CREDENTIALS.test(line)),
      [],
    );
  });

  test('no line contains base64 credentials of any login', () => {
    const encoded = [server.admin, user, robot].map((login) => basicAuthorization(login).slice('Basic '.length));
    assert.deepEqual(encoded.flatMap(linesContaining), []);
  });
});
