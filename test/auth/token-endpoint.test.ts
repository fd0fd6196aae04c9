/**
 * The Docker token endpoint over HTTP: GET /token with Basic credentials,
 * POST /token with the OAuth 2 form, the JWKS, the claims of issued tokens,
 * scopes that must grant nothing, and the login and token events.
 */
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { RegistryEvent, RegistryEventSink } from '../../src/audit/registry-events.js';
import { decodeJwt, fetchJwks, fetchToken, nowSeconds, postTokenForm, registryRequest, requestToken, type Login, type TokenBody } from '../helpers/auth.js';
import { assertOciError } from '../helpers/registry-client.js';
import { basicAuthorization, createTestRobot, createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';

/** Scopes that ask for more than alice holds: she may pull and push team-a and only pull team-b. */
const GREEDY_SCOPES = ['repository:team-a/app:pull,push,delete', 'repository:team-b/app:pull,push', 'repository:team-c/app:pull', 'registry:catalog:*'];
const ALICE_ACCESS = [
  { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
  { type: 'repository', name: 'team-b/app', actions: ['pull'] },
];

/** Creates alice with her grants on a server. */
async function createAlice(server: TestServer): Promise<Login> {
  const alice = await createTestUser(server.db, 'alice');
  await grantToUser(server.db, 'alice', 'team-a/**', ['pull', 'push']);
  await grantToUser(server.db, 'alice', 'team-b/**', ['pull']);
  return alice;
}

describe('GET /token', () => {
  let server: TestServer;
  let alice: Login;
  let issued: TokenBody;
  let requestedAt: number;

  before(async () => {
    server = await startTestServer();
    alice = await createAlice(server);
    requestedAt = nowSeconds();
    issued = await fetchToken(server.url, alice, GREEDY_SCOPES);
  });
  after(() => server.close());

  test('returns 200 with token and access_token', async () => {
    const response = await requestToken(server.url, alice, GREEDY_SCOPES);
    assert.equal(response.status, 200);
    assert.equal(typeof response.body.token, 'string');
    assert.equal(response.body.access_token, response.body.token);
  });

  test('returns expires_in of 300 seconds', () => {
    assert.equal(issued.expires_in, 300);
  });

  test('returns issued_at as the RFC 3339 time of iat', () => {
    assert.equal(issued.issued_at, new Date((decodeJwt(issued.token).payload.iat as number) * 1000).toISOString());
  });

  test('sends Cache-Control no-store', async () => {
    const response = await requestToken(server.url, alice, []);
    assert.equal(response.headers['cache-control'], 'no-store');
  });

  test('signs with ES256', () => {
    assert.equal(decodeJwt(issued.token).header.alg, 'ES256');
  });

  test('names the JWKS key in kid', async () => {
    const keys = await fetchJwks(server.url);
    assert.deepEqual(
      keys.map((key) => key.kid),
      [decodeJwt(issued.token).header.kid],
    );
  });

  test('sets iss to the configured issuer', () => {
    assert.equal(decodeJwt(issued.token).payload.iss, 'portcullis');
  });

  test('sets sub to the username', () => {
    assert.equal(decodeJwt(issued.token).payload.sub, 'alice');
  });

  test('sets aud to the service', () => {
    assert.equal(decodeJwt(issued.token).payload.aud, 'portcullis');
  });

  test('sets iat to the time of issue', () => {
    const iat = decodeJwt(issued.token).payload.iat as number;
    assert.ok(iat >= requestedAt, `iat ${iat} is before the request at ${requestedAt}`);
    assert.ok(iat <= nowSeconds(), `iat ${iat} is in the future`);
  });

  test('sets nbf to iat', () => {
    const { payload } = decodeJwt(issued.token);
    assert.equal(payload.nbf, payload.iat);
  });

  test('sets exp to iat plus expires_in', () => {
    const { payload } = decodeJwt(issued.token);
    assert.equal(payload.exp, (payload.iat as number) + issued.expires_in);
  });

  test('sets a jti that differs per token', async () => {
    const other = await fetchToken(server.url, alice, GREEDY_SCOPES);
    const jti = decodeJwt(issued.token).payload.jti;
    assert.equal(typeof jti, 'string');
    assert.notEqual(jti, decodeJwt(other.token).payload.jti);
  });

  test('grants the intersection of the scopes and the grants', () => {
    assert.deepEqual(decodeJwt(issued.token).payload.access, ALICE_ACCESS);
  });

  test('merges scopes sent in one space-separated parameter', async () => {
    const body = await fetchToken(server.url, alice, [GREEDY_SCOPES.join(' ')]);
    assert.deepEqual(decodeJwt(body.token).payload.access, ALICE_ACCESS);
  });

  test('grants the catalog to an administrator', async () => {
    const body = await fetchToken(server.url, server.admin, ['registry:catalog:*']);
    assert.deepEqual(decodeJwt(body.token).payload.access, [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
  });

  test('grants a robot its own access', async () => {
    const robot = await createTestRobot(server.db, 'ci', [{ pattern: 'team-a/*', permissions: ['push'] }]);
    const body = await fetchToken(server.url, robot, ['repository:team-a/app:pull,push']);
    assert.equal(decodeJwt(body.token).payload.sub, 'robot$ci');
    assert.deepEqual(decodeJwt(body.token).payload.access, [{ type: 'repository', name: 'team-a/app', actions: ['push'] }]);
  });

  test('signature verifies with the JWKS key', async () => {
    const [jwk] = await fetchJwks(server.url);
    assert.ok(jwk);
    const decoded = decodeJwt(issued.token);
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    assert.equal(verify('sha256', Buffer.from(decoded.signingInput), { key, dsaEncoding: 'ieee-p1363' }, decoded.signature), true);
  });

  test('JWKS holds no private key member', async () => {
    const [jwk] = await fetchJwks(server.url);
    assert.equal(jwk?.d, undefined);
  });

  test('offline_token=true returns a refresh_token', async () => {
    const body = await fetchToken(server.url, alice, [], { offline_token: 'true', client_id: 'x' });
    assert.equal(typeof body.refresh_token, 'string');
  });

  test('refresh_token names the client_id it was issued to', async () => {
    const body = await fetchToken(server.url, alice, [], { offline_token: 'true', client_id: 'x' });
    assert.equal(decodeJwt(body.refresh_token ?? '').payload.client_id, 'x');
  });

  test('without offline_token returns no refresh_token', () => {
    assert.equal(issued.refresh_token, undefined);
  });

  test('wrong password returns 401 UNAUTHORIZED', async () => {
    const response = await requestToken(server.url, { username: 'alice', password: 'wrong' }, GREEDY_SCOPES);
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('wrong password returns a Basic challenge', async () => {
    const response = await requestToken(server.url, { username: 'alice', password: 'wrong' }, GREEDY_SCOPES);
    assert.match(String(response.headers['www-authenticate']), /^Basic /);
  });

  test('unknown user returns 401', async () => {
    const response = await requestToken(server.url, { username: 'nobody', password: 'nobody-password' }, []);
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('username with a NUL byte returns 401', async () => {
    const response = await requestToken(server.url, { username: 'ali\u0000ce', password: 'alice-password' }, []);
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('Bearer credentials return 401', async () => {
    const response = await registryRequest(server.url, 'get', '/token?service=portcullis', `Bearer ${issued.token}`);
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('wrong service returns 400', async () => {
    const response = await requestToken(server.url, alice, GREEDY_SCOPES, { service: 'another-registry' });
    assert.equal(response.status, 400);
  });

  test('service given twice returns 400', async () => {
    const response = await registryRequest(server.url, 'get', '/token?service=portcullis&service=another-registry&scope=repository:team-a/app:pull', basicAuthorization(alice));
    assert.equal(response.status, 400);
  });

  test('no service parameter returns 200', async () => {
    const response = await registryRequest(server.url, 'get', '/token?scope=repository:team-a/app:pull', basicAuthorization(alice));
    assert.equal(response.status, 200);
  });

  test('no credentials return an anonymous token with no access', async () => {
    const body = await fetchToken(server.url, null, GREEDY_SCOPES);
    const { payload } = decodeJwt(body.token);
    assert.equal(payload.sub, 'anonymous');
    assert.deepEqual(payload.access, []);
  });
});

describe('GET /token scopes that grant nothing', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  // The administrator has every permission on every grantable name, so an empty access list comes from the name alone.
  const cases: Array<{ name: string; scope: string }> = [
    { name: 'parent directory component', scope: 'repository:team-a/../team-b/app:pull' },
    { name: 'current directory component', scope: 'repository:team-a/./app:pull' },
    { name: 'percent-encoded slash', scope: 'repository:team-a%2Fapp:pull' },
    { name: 'percent-encoded dots', scope: 'repository:team-a/%2E%2E/app:pull' },
    { name: 'uppercase letters', scope: 'repository:Team-A/App:pull' },
    { name: 'Docker Hub host', scope: 'repository:docker.io/library/x:pull' },
    { name: 'GitHub Container Registry host', scope: 'repository:ghcr.io/org/x:pull' },
    { name: 'host with a port', scope: 'repository:localhost:5000/x:pull' },
    { name: 'localhost host', scope: 'repository:localhost/x:pull' },
    { name: 'leading slash', scope: 'repository:/team-a/app:pull' },
    { name: 'empty component', scope: 'repository:team-a//app:pull' },
    { name: 'trailing slash', scope: 'repository:team-a/app/:pull' },
    { name: 'unknown action', scope: 'repository:team-a/app:admin' },
    { name: 'registry resource other than the catalog', scope: 'registry:users:*' },
  ];

  for (const row of cases) {
    test(`${row.name} grants no access`, async () => {
      const body = await fetchToken(server.url, server.admin, [row.scope]);
      assert.deepEqual(decodeJwt(body.token).payload.access, []);
    });
  }

  test('valid scope next to a rejected one is still granted', async () => {
    const body = await fetchToken(server.url, server.admin, ['repository:docker.io/library/x:pull', 'repository:team-a/app:pull']);
    assert.deepEqual(decodeJwt(body.token).payload.access, [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
  });
});

describe('POST /token', () => {
  let server: TestServer;
  let alice: Login;

  before(async () => {
    server = await startTestServer();
    alice = await createAlice(server);
  });
  after(() => server.close());

  /** Builds the form containerd sends for a password grant, with the scopes joined by spaces. */
  function passwordForm(login: Login, extra: Record<string, string> = {}): Record<string, string> {
    return { grant_type: 'password', username: login.username, password: login.password, service: 'portcullis', client_id: 'containerd-client', scope: GREEDY_SCOPES.join(' '), ...extra };
  }

  test('grant_type=password returns 200 with access_token', async () => {
    const response = await postTokenForm(server.url, passwordForm(alice));
    assert.equal(response.status, 200);
    assert.equal(typeof response.body.access_token, 'string');
  });

  test('grant_type=password grants the intersection of the scopes and the grants', async () => {
    const response = await postTokenForm(server.url, passwordForm(alice));
    assert.deepEqual(decodeJwt(response.body.access_token).payload.access, ALICE_ACCESS);
  });

  test('grant_type=password with access_type=offline returns a refresh_token', async () => {
    const response = await postTokenForm(server.url, passwordForm(alice, { access_type: 'offline' }));
    assert.equal(typeof response.body.refresh_token, 'string');
  });

  test('grant_type=password without access_type returns no refresh_token', async () => {
    const response = await postTokenForm(server.url, passwordForm(alice));
    assert.equal(response.body.refresh_token, undefined);
  });

  test('grant_type=password with a wrong password returns 401', async () => {
    const response = await postTokenForm(server.url, passwordForm({ username: 'alice', password: 'wrong' }));
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('grant_type=password with a NUL byte in the username returns 401', async () => {
    const response = await postTokenForm(server.url, passwordForm({ username: 'ali\u0000ce', password: 'alice-password' }));
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('grant_type=password without a password returns 401', async () => {
    const response = await postTokenForm(server.url, { grant_type: 'password', username: 'alice', service: 'portcullis' });
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('grant_type=password for another service returns 400', async () => {
    const response = await postTokenForm(server.url, passwordForm(alice, { service: 'another-registry' }));
    assert.equal(response.status, 400);
  });

  test('grant_type=refresh_token returns 200 with a token for the same subject', async () => {
    const login = await postTokenForm(server.url, passwordForm(alice, { access_type: 'offline' }));
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token, service: 'portcullis', client_id: 'containerd-client', scope: 'repository:team-a/app:pull' });
    assert.equal(response.status, 200);
    assert.equal(decodeJwt(response.body.access_token).payload.sub, 'alice');
  });

  test('grant_type=refresh_token grants the scopes of its own request', async () => {
    const login = await postTokenForm(server.url, passwordForm(alice, { access_type: 'offline' }));
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token, service: 'portcullis', scope: 'repository:team-b/app:pull,push' });
    assert.deepEqual(decodeJwt(response.body.access_token).payload.access, [{ type: 'repository', name: 'team-b/app', actions: ['pull'] }]);
  });

  test('grant_type=refresh_token accepts the refresh_token of GET /token', async () => {
    const login = await fetchToken(server.url, alice, [], { offline_token: 'true', client_id: 'docker' });
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: login.refresh_token ?? '', service: 'portcullis', scope: 'repository:team-a/app:pull' });
    assert.equal(response.status, 200);
  });

  test('token from grant_type=refresh_token works on /v2', async () => {
    const login = await postTokenForm(server.url, passwordForm(alice, { access_type: 'offline' }));
    const refreshed = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token, service: 'portcullis', scope: 'repository:team-a/app:pull,push' });
    const response = await registryRequest(server.url, 'post', '/v2/team-a/app/blobs/uploads/', `Bearer ${refreshed.body.access_token}`);
    assert.equal(response.status, 202);
  });

  test('grant_type=refresh_token with an access token returns 401', async () => {
    const login = await postTokenForm(server.url, passwordForm(alice));
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: login.body.access_token, service: 'portcullis' });
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('grant_type=refresh_token with a garbage value returns 401', async () => {
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: 'not-a-jwt', service: 'portcullis' });
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('grant_type=refresh_token with a tampered subject returns 401', async () => {
    const login = await postTokenForm(server.url, passwordForm(alice, { access_type: 'offline' }));
    const [header, payload, signature] = String(login.body.refresh_token).split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'admin' })).toString('base64url');
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: `${header}.${forged}.${signature}`, service: 'portcullis' });
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('grant_type=refresh_token after a password change returns 401', async () => {
    const user = await createTestUser(server.db, 'changes-password');
    const login = await fetchToken(server.url, user, [], { offline_token: 'true', client_id: 'x' });
    await server.db('users').where({ username: user.username }).update({ credentials_changed_at: server.db.raw("now() + interval '2 seconds'") });
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: login.refresh_token ?? '', service: 'portcullis' });
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('unknown grant_type returns 400', async () => {
    const response = await postTokenForm(server.url, { grant_type: 'client_credentials', client_id: 'x', client_secret: 'y', service: 'portcullis' });
    assert.equal(response.status, 400);
  });
});

describe('login and token events', () => {
  const events: RegistryEvent[] = [];
  const sink: RegistryEventSink = {
    record: async (_context, event) => {
      events.push(event);
    },
  };
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ events: sink, auth: { maxFailuresPerUser: 2 } });
  });
  after(() => server.close());

  /** Returns the auth.login events of one subject. */
  function loginsOf(subject: string): Array<Extract<RegistryEvent, { action: 'auth.login' }>> {
    return events.filter((event): event is Extract<RegistryEvent, { action: 'auth.login' }> => event.action === 'auth.login' && event.subject === subject);
  }

  /** Returns the auth.token events of one subject. */
  function tokensOf(subject: string): Array<Extract<RegistryEvent, { action: 'auth.token' }>> {
    return events.filter((event): event is Extract<RegistryEvent, { action: 'auth.token' }> => event.action === 'auth.token' && event.subject === subject);
  }

  test('GET /token records a successful auth.login', async () => {
    const user = await createTestUser(server.db, 'event-get');
    await fetchToken(server.url, user, []);
    assert.deepEqual(loginsOf('event-get'), [{ action: 'auth.login', subject: 'event-get', success: true, method: 'token' }]);
  });

  test('GET /token records auth.token with the jti and access', async () => {
    const user = await createTestUser(server.db, 'event-token');
    await grantToUser(server.db, 'event-token', 'team-a/**', ['pull']);
    const body = await fetchToken(server.url, user, ['repository:team-a/app:pull,push']);
    assert.deepEqual(tokensOf('event-token'), [
      { action: 'auth.token', subject: 'event-token', tokenId: decodeJwt(body.token).payload.jti, access: [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }], refresh: false, grant: 'password' },
    ]);
  });

  test('GET /token with a wrong password records a failed auth.login', async () => {
    await createTestUser(server.db, 'event-get-fail');
    await requestToken(server.url, { username: 'event-get-fail', password: 'wrong' }, []);
    assert.deepEqual(loginsOf('event-get-fail'), [{ action: 'auth.login', subject: 'event-get-fail', success: false, method: 'token', reason: 'invalid credentials' }]);
  });

  test('POST /token records a successful auth.login', async () => {
    const user = await createTestUser(server.db, 'event-post');
    await postTokenForm(server.url, { grant_type: 'password', username: user.username, password: user.password, service: 'portcullis' });
    assert.deepEqual(loginsOf('event-post'), [{ action: 'auth.login', subject: 'event-post', success: true, method: 'token' }]);
  });

  test('POST /token with a wrong password records a failed auth.login', async () => {
    await createTestUser(server.db, 'event-post-fail');
    await postTokenForm(server.url, { grant_type: 'password', username: 'event-post-fail', password: 'wrong', service: 'portcullis' });
    assert.deepEqual(loginsOf('event-post-fail'), [{ action: 'auth.login', subject: 'event-post-fail', success: false, method: 'token', reason: 'invalid credentials' }]);
  });

  test('grant_type=refresh_token records auth.token with refresh true', async () => {
    const user = await createTestUser(server.db, 'event-refresh');
    const login = await fetchToken(server.url, user, [], { offline_token: 'true', client_id: 'x' });
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: login.refresh_token ?? '', service: 'portcullis' });
    const last = tokensOf('event-refresh').at(-1);
    assert.equal(last?.tokenId, decodeJwt(response.body.access_token).payload.jti);
    assert.equal(last?.refresh, true);
  });

  test('Basic on /v2 records a successful auth.login', async () => {
    const user = await createTestUser(server.db, 'event-basic');
    await registryRequest(server.url, 'get', '/v2/', basicAuthorization(user));
    assert.deepEqual(loginsOf('event-basic'), [{ action: 'auth.login', subject: 'event-basic', success: true, method: 'basic' }]);
  });

  test('Basic on /v2 with a wrong password records a failed auth.login', async () => {
    await createTestUser(server.db, 'event-basic-fail');
    await registryRequest(server.url, 'get', '/v2/', basicAuthorization({ username: 'event-basic-fail', password: 'wrong' }));
    assert.deepEqual(loginsOf('event-basic-fail'), [{ action: 'auth.login', subject: 'event-basic-fail', success: false, method: 'basic', reason: 'invalid credentials' }]);
  });

  test('Basic on /v2 for an unknown user records a failed auth.login', async () => {
    await registryRequest(server.url, 'get', '/v2/', basicAuthorization({ username: 'event-nobody', password: 'whatever' }));
    assert.equal(loginsOf('event-nobody').length, 1);
  });

  test('rate-limited login records a failed auth.login', async () => {
    for (let attempt = 0; attempt < 3; attempt++) await requestToken(server.url, { username: 'event-limited', password: 'wrong' }, []);
    assert.deepEqual(
      loginsOf('event-limited').map((event) => event.reason),
      ['invalid credentials', 'invalid credentials', 'rate limited'],
    );
  });

  test('anonymous token records auth.token for anonymous', async () => {
    const before = tokensOf('anonymous').length;
    await fetchToken(server.url, null, ['repository:team-a/app:pull']);
    assert.equal(tokensOf('anonymous').length, before + 1);
  });

  test('robot login records its robot$ subject', async () => {
    const robot = await createTestRobot(server.db, 'event-robot', []);
    await fetchToken(server.url, robot, []);
    assert.equal(loginsOf('robot$event-robot').length, 1);
  });
});
