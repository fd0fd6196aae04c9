/**
 * Authentication and authorization of /v2 requests over HTTP: the Bearer
 * challenge each endpoint sends, Bearer tokens and Basic credentials,
 * rejected tokens, grants of users and robots, anonymous pulls and the
 * login rate limits. Pull access is probed with GET tags, which needs the
 * pull scope but no certified content, so the outcome depends on
 * authentication alone.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  bearerAuthorization,
  decodeJwt,
  encodeSegment,
  fetchJwks,
  fetchToken,
  hmacToken,
  nowSeconds,
  parseBearerChallenge,
  pemOfJwk,
  postTokenForm,
  registryRequest,
  requestToken,
  serverSigningKey,
  signAccessToken,
  TEST_LEEWAY_SECONDS,
  validAccessClaims,
  type Login,
  type ServerSigningKey,
} from '../helpers/auth.js';
import { assertOciError, errorCodeOf, RegistryClient, uniqueRepository } from '../helpers/registry-client.js';
import { basicAuthorization, createTestRobot, createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';
import { certify } from '../helpers/certification.js';

const ZERO_DIGEST = `sha256:${'0'.repeat(64)}`;

/** Asserts a 401 whose challenge carries `error="<error>"`. */
function assertChallengeError(response: { status: number; headers: Record<string, string>; text: string }, error: string): void {
  assert.equal(response.status, 401, `expected 401, got ${response.status}: ${response.text}`);
  assert.equal(parseBearerChallenge(response.headers['www-authenticate'])?.error, error, `challenge: ${response.headers['www-authenticate']}`);
}

/** Returns the message of the first OCI error of a response. */
function errorMessageOf(response: { body: unknown }): string {
  return (response.body as { errors?: Array<{ message: string }> }).errors?.[0]?.message ?? '';
}

describe('challenges on /v2 without credentials', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  test('GET /v2/ returns 401 UNAUTHORIZED', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/', null);
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('GET /v2/ challenges with realm and service and no scope', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/', null);
    assert.equal(response.headers['www-authenticate'], `Bearer realm="${server.url}/token",service="portcullis"`);
  });

  test('GET /v2/ with Basic credentials returns 200', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/', server.adminAuthorization);
    assert.equal(response.status, 200);
  });

  test('GET /v2/ with a Bearer token returns 200', async () => {
    const { token } = await fetchToken(server.url, server.admin, []);
    const response = await registryRequest(server.url, 'get', '/v2/', bearerAuthorization(token));
    assert.equal(response.status, 200);
  });

  test('GET /v2/ with an anonymous token returns 401', async () => {
    const { token } = await fetchToken(server.url, null, []);
    const response = await registryRequest(server.url, 'get', '/v2/', bearerAuthorization(token));
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  const cases: Array<{ name: string; method: 'get' | 'head' | 'put' | 'post' | 'patch' | 'delete'; path: string; scope: string }> = [
    { name: 'GET manifest', method: 'get', path: '/v2/team-a/app/manifests/v1', scope: 'repository:team-a/app:pull' },
    { name: 'HEAD manifest', method: 'head', path: '/v2/team-a/app/manifests/v1', scope: 'repository:team-a/app:pull' },
    { name: 'GET blob', method: 'get', path: `/v2/team-a/app/blobs/${ZERO_DIGEST}`, scope: 'repository:team-a/app:pull' },
    { name: 'HEAD blob', method: 'head', path: `/v2/team-a/app/blobs/${ZERO_DIGEST}`, scope: 'repository:team-a/app:pull' },
    { name: 'GET tags', method: 'get', path: '/v2/team-a/app/tags/list', scope: 'repository:team-a/app:pull' },
    { name: 'GET referrers', method: 'get', path: `/v2/team-a/app/referrers/${ZERO_DIGEST}`, scope: 'repository:team-a/app:pull' },
    { name: 'PUT manifest', method: 'put', path: '/v2/team-a/app/manifests/v1', scope: 'repository:team-a/app:pull,push' },
    { name: 'POST upload', method: 'post', path: '/v2/team-a/app/blobs/uploads/', scope: 'repository:team-a/app:pull,push' },
    { name: 'PATCH upload', method: 'patch', path: '/v2/team-a/app/blobs/uploads/0b5a3c1e-0000-4000-8000-000000000000', scope: 'repository:team-a/app:pull,push' },
    { name: 'DELETE manifest', method: 'delete', path: `/v2/team-a/app/manifests/${ZERO_DIGEST}`, scope: 'repository:team-a/app:delete' },
    { name: 'DELETE blob', method: 'delete', path: `/v2/team-a/app/blobs/${ZERO_DIGEST}`, scope: 'repository:team-a/app:delete' },
    {
      name: 'POST cross-repository mount',
      method: 'post',
      path: `/v2/team-a/app/blobs/uploads/?mount=${ZERO_DIGEST}&from=team-b/base`,
      scope: 'repository:team-a/app:pull,push repository:team-b/base:pull',
    },
    { name: 'GET catalog', method: 'get', path: '/v2/_catalog', scope: 'registry:catalog:*' },
  ];

  for (const row of cases) {
    test(`${row.name} returns 401 with scope "${row.scope}"`, async () => {
      const response = await registryRequest(server.url, row.method, row.path, null);
      assert.equal(response.status, 401);
      assert.equal(response.headers['www-authenticate'], `Bearer realm="${server.url}/token",service="portcullis",scope="${row.scope}"`);
    });
  }

  test('GET manifest returns the UNAUTHORIZED body with the challenge', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/manifests/v1', null);
    assertOciError(response, 401, 'UNAUTHORIZED');
  });
});

describe('Bearer tokens and Basic credentials on /v2', () => {
  let server: TestServer;
  let alice: Login;
  let bob: Login;
  let mounter: Login;

  before(async () => {
    server = await startTestServer();
    const admin = new RegistryClient(server.url, server.admin);
    await certify(server.db, 'team-a/app', (await admin.pushImage('team-a/app', 'v1')).digest);
    await certify(server.db, 'team-b/app', (await admin.pushImage('team-b/app', 'v1')).digest);
    // alice may pull and push team-a and pull team-b; bob may only pull team-a.
    alice = await createTestUser(server.db, 'alice');
    await grantToUser(server.db, 'alice', 'team-a/**', ['pull', 'push']);
    await grantToUser(server.db, 'alice', 'team-b/**', ['pull']);
    bob = await createTestUser(server.db, 'bob');
    await grantToUser(server.db, 'bob', 'team-a/**', ['pull']);
    // mounter may read uncertified blobs of team-b, so a mount from there does not depend on certification.
    mounter = await createTestUser(server.db, 'mounter');
    await grantToUser(server.db, 'mounter', 'team-a/**', ['pull', 'push']);
    await grantToUser(server.db, 'mounter', 'team-b/**', ['pull-uncertified']);
  });
  after(() => server.close());

  test('Bearer token with pull returns 200 on GET tags', async () => {
    const { token } = await fetchToken(server.url, alice, ['repository:team-a/app:pull']);
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', bearerAuthorization(token));
    assert.equal(response.status, 200);
  });

  test('Basic credentials return 200 on GET tags', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', basicAuthorization(alice));
    assert.equal(response.status, 200);
  });

  test('Bearer token with push returns 202 on POST upload', async () => {
    const { token } = await fetchToken(server.url, alice, ['repository:team-a/app:pull,push']);
    const response = await registryRequest(server.url, 'post', '/v2/team-a/app/blobs/uploads/', bearerAuthorization(token));
    assert.equal(response.status, 202);
  });

  test('token without push returns 401 insufficient_scope when the identity holds push', async () => {
    const { token } = await fetchToken(server.url, alice, ['repository:team-a/app:pull']);
    const response = await registryRequest(server.url, 'post', '/v2/team-a/app/blobs/uploads/', bearerAuthorization(token));
    assertChallengeError(response, 'insufficient_scope');
    assert.equal(parseBearerChallenge(response.headers['www-authenticate'])?.scope, 'repository:team-a/app:pull,push');
  });

  test('token for one repository returns 401 insufficient_scope on another', async () => {
    const { token } = await fetchToken(server.url, alice, ['repository:team-a/app:pull']);
    const response = await registryRequest(server.url, 'get', '/v2/team-b/app/tags/list', bearerAuthorization(token));
    assertChallengeError(response, 'insufficient_scope');
  });

  test('token of an identity without push returns 403 DENIED', async () => {
    const { token } = await fetchToken(server.url, bob, ['repository:team-a/app:pull,push']);
    const response = await registryRequest(server.url, 'post', '/v2/team-a/app/blobs/uploads/', bearerAuthorization(token));
    assertOciError(response, 403, 'DENIED');
  });

  test('403 DENIED names the missing permission and repository', async () => {
    const { token } = await fetchToken(server.url, bob, ['repository:team-a/app:pull,push']);
    const response = await registryRequest(server.url, 'post', '/v2/team-a/app/blobs/uploads/', bearerAuthorization(token));
    assert.match(errorMessageOf(response), /push permission on team-a\/app/);
  });

  test('Basic credentials without push return 403 DENIED', async () => {
    const response = await registryRequest(server.url, 'post', '/v2/team-a/app/blobs/uploads/', basicAuthorization(bob));
    assertOciError(response, 403, 'DENIED');
  });

  test('wrong Basic password returns 401 with a challenge', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/manifests/v1', basicAuthorization({ username: 'alice', password: 'wrong' }));
    assertOciError(response, 401, 'UNAUTHORIZED');
    assert.equal(parseBearerChallenge(response.headers['www-authenticate'])?.scope, 'repository:team-a/app:pull');
  });

  test('Basic username with a NUL byte returns 401', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/', basicAuthorization({ username: 'ali\u0000ce', password: 'alice-password' }));
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('unknown Authorization scheme returns 401', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/manifests/v1', 'Digest username="alice"');
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('mount with a token for both repositories returns 201', async () => {
    // Only a blob of a certified image can be mounted by a caller without pull-uncertified.
    const image = await new RegistryClient(server.url, server.admin).pushImage('team-b/app');
    await certify(server.db, 'team-b/app', image.digest);
    const layer = (JSON.parse(image.body.toString('utf8')) as { layers: Array<{ digest: string }> }).layers[0] as { digest: string };
    const { token } = await fetchToken(server.url, mounter, ['repository:team-a/app:pull,push', 'repository:team-b/app:pull']);
    const response = await registryRequest(server.url, 'post', `/v2/team-a/app/blobs/uploads/?mount=${layer.digest}&from=team-b/app`, bearerAuthorization(token));
    assert.equal(response.status, 201);
  });

  test('mount with a token without the source scope falls back to 202', async () => {
    const layer = await new RegistryClient(server.url, server.admin).pushBlob('team-b/app', `mount-target-only-${Date.now()}`);
    const { token } = await fetchToken(server.url, mounter, ['repository:team-a/app:pull,push']);
    const response = await registryRequest(server.url, 'post', `/v2/team-a/app/blobs/uploads/?mount=${layer.digest}&from=team-b/app`, bearerAuthorization(token));
    assert.equal(response.status, 202);
  });

  test('mount from a repository the identity may not pull falls back to 202', async () => {
    const layer = await new RegistryClient(server.url, server.admin).pushBlob('team-c/secret', `mount-forbidden-${Date.now()}`);
    const { token } = await fetchToken(server.url, mounter, ['repository:team-a/app:pull,push', 'repository:team-c/secret:pull']);
    const response = await registryRequest(server.url, 'post', `/v2/team-a/app/blobs/uploads/?mount=${layer.digest}&from=team-c/secret`, bearerAuthorization(token));
    assert.equal(response.status, 202);
  });

  test('catalog with an admin token returns 200', async () => {
    const { token } = await fetchToken(server.url, server.admin, ['registry:catalog:*']);
    const response = await registryRequest(server.url, 'get', '/v2/_catalog', bearerAuthorization(token));
    assert.equal(response.status, 200);
  });

  test('catalog for a user without admin returns 403 DENIED', async () => {
    const { token } = await fetchToken(server.url, alice, ['registry:catalog:*']);
    const response = await registryRequest(server.url, 'get', '/v2/_catalog', bearerAuthorization(token));
    assertOciError(response, 403, 'DENIED');
  });
});

describe('rejected Bearer tokens on /v2', () => {
  const PATH = '/v2/team-a/app/tags/list';
  const ACCESS = [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }];
  let server: TestServer;
  let key: ServerSigningKey;

  before(async () => {
    server = await startTestServer();
    await new RegistryClient(server.url, server.admin).pushImage('team-a/app', 'v1');
    key = await serverSigningKey(server.db);
  });
  after(() => server.close());

  /** Sends the token and asserts 401, `error="invalid_token"` and the reason in the message. */
  async function assertRejected(token: string, reason: string): Promise<void> {
    const response = await registryRequest(server.url, 'get', PATH, bearerAuthorization(token));
    assertChallengeError(response, 'invalid_token');
    assert.equal(errorCodeOf(response), 'UNAUTHORIZED');
    assert.equal(errorMessageOf(response), `invalid token: ${reason}`);
  }

  test('hand-signed token with valid claims returns 200', async () => {
    const token = signAccessToken(validAccessClaims('admin', ACCESS), key);
    const response = await registryRequest(server.url, 'get', PATH, bearerAuthorization(token));
    assert.equal(response.status, 200);
  });

  test('token expired within the leeway returns 200', async () => {
    const now = nowSeconds();
    const token = signAccessToken({ ...validAccessClaims('admin', ACCESS), iat: now - 400, nbf: now - 400, exp: now - TEST_LEEWAY_SECONDS + 10 }, key);
    const response = await registryRequest(server.url, 'get', PATH, bearerAuthorization(token));
    assert.equal(response.status, 200);
  });

  test('unsigned token (alg none) returns 401', async () => {
    const token = `${encodeSegment({ alg: 'none', typ: 'JWT', kid: key.kid })}.${encodeSegment(validAccessClaims('admin', ACCESS))}.`;
    await assertRejected(token, 'algorithm mismatch');
  });

  test('HS256 token keyed with the JWKS public key returns 401', async () => {
    const [jwk] = await fetchJwks(server.url);
    assert.ok(jwk);
    const token = hmacToken({ typ: 'JWT', kid: jwk.kid }, validAccessClaims('admin', ACCESS), pemOfJwk(jwk));
    await assertRejected(token, 'algorithm mismatch');
  });

  test('token expired beyond the leeway returns 401', async () => {
    const now = nowSeconds();
    const token = signAccessToken({ ...validAccessClaims('admin', ACCESS), iat: now - 400, nbf: now - 400, exp: now - TEST_LEEWAY_SECONDS - 10 }, key);
    await assertRejected(token, 'expired');
  });

  test('token valid only beyond the leeway returns 401', async () => {
    const now = nowSeconds();
    const token = signAccessToken({ ...validAccessClaims('admin', ACCESS), nbf: now + TEST_LEEWAY_SECONDS + 30, exp: now + 600 }, key);
    await assertRejected(token, 'not yet valid');
  });

  test('token with the wrong issuer returns 401', async () => {
    const token = signAccessToken({ ...validAccessClaims('admin', ACCESS), iss: 'another-issuer' }, key);
    await assertRejected(token, 'wrong issuer');
  });

  test('token with the wrong audience returns 401', async () => {
    const token = signAccessToken({ ...validAccessClaims('admin', ACCESS), aud: 'another-registry' }, key);
    await assertRejected(token, 'wrong audience');
  });

  test('token with an unknown kid returns 401', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const stranger = { kid: 'unknown-key-id', privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
    await assertRejected(signAccessToken(validAccessClaims('admin', ACCESS), stranger), 'unknown key id');
  });

  test('token signed by another key under the server kid returns 401', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const impostor = { kid: key.kid, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
    await assertRejected(signAccessToken(validAccessClaims('admin', ACCESS), impostor), 'invalid signature');
  });

  test('token with a tampered payload returns 401', async () => {
    const { token } = await fetchToken(server.url, server.admin, ['repository:team-a/app:pull']);
    const decoded = decodeJwt(token);
    const widened = { ...decoded.payload, access: [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }] };
    const [header, , signature] = token.split('.');
    await assertRejected(`${header}.${encodeSegment(widened)}.${signature}`, 'invalid signature');
  });

  test('refresh token used as an access token returns 401', async () => {
    const { refresh_token: refreshToken } = await fetchToken(server.url, server.admin, [], { offline_token: 'true', client_id: 'test' });
    assert.ok(refreshToken);
    await assertRejected(refreshToken, 'wrong type');
  });

  test('token with a garbage value returns 401', async () => {
    await assertRejected('not-a-jwt', 'malformed');
  });
});

describe('grants of users and robots on /v2', () => {
  let server: TestServer;
  let robot: Login;
  let reader: Login;

  before(async () => {
    server = await startTestServer();
    const admin = new RegistryClient(server.url, server.admin);
    await certify(server.db, 'team-a/app', (await admin.pushImage('team-a/app', 'v1')).digest);
    robot = await createTestRobot(server.db, 'ci-team-a', [{ pattern: 'team-a/*', permissions: ['push'] }]);
    reader = await createTestUser(server.db, 'reader');
    await grantToUser(server.db, 'reader', 'team-a/**', ['pull']);
  });
  after(() => server.close());

  test('robot with push on team-a/* pushes an image to team-a/<name>', async () => {
    const repository = uniqueRepository('team-a');
    const client = new RegistryClient(server.url, robot);
    const manifest = await client.pushImage(repository, 'v1');
    const stored = await server.db('manifests').where({ digest: manifest.digest }).first('id');
    assert.ok(stored, 'the manifest was stored');
  });

  test('robot with push on team-a/* pushes with its token', async () => {
    const { token } = await fetchToken(server.url, robot, ['repository:team-a/app:pull,push']);
    const response = await registryRequest(server.url, 'post', '/v2/team-a/app/blobs/uploads/', bearerAuthorization(token));
    assert.equal(response.status, 202);
  });

  test('robot with only push gets 200 on HEAD of a blob it pushed', async () => {
    const layer = await new RegistryClient(server.url, robot).pushBlob('team-a/app', `head-by-pusher-${Date.now()}`);
    const response = await registryRequest(server.url, 'head', `/v2/team-a/app/blobs/${layer.digest}`, basicAuthorization(robot));
    assert.equal(response.status, 200);
  });

  test('robot with only push gets 404 on HEAD of an unknown blob', async () => {
    const { token } = await fetchToken(server.url, robot, ['repository:team-a/app:pull,push']);
    const response = await registryRequest(server.url, 'head', `/v2/team-a/app/blobs/${ZERO_DIGEST}`, bearerAuthorization(token));
    assert.equal(response.status, 404);
  });

  test('robot with only push gets 403 on GET blob', async () => {
    const layer = await new RegistryClient(server.url, robot).pushBlob('team-a/app', `get-by-pusher-${Date.now()}`);
    const response = await registryRequest(server.url, 'get', `/v2/team-a/app/blobs/${layer.digest}`, basicAuthorization(robot));
    assertOciError(response, 403, 'DENIED');
  });

  test('robot with push on team-a/* gets 403 on HEAD in team-b/app', async () => {
    const response = await registryRequest(server.url, 'head', `/v2/team-b/app/blobs/${ZERO_DIGEST}`, basicAuthorization(robot));
    assert.equal(response.status, 403);
  });

  test('robot with push on team-a/* gets 403 on team-b/app', async () => {
    const response = await registryRequest(server.url, 'post', '/v2/team-b/app/blobs/uploads/', basicAuthorization(robot));
    assertOciError(response, 403, 'DENIED');
  });

  test('robot with push on team-a/* gets 403 on team-a/x/y', async () => {
    const response = await registryRequest(server.url, 'post', '/v2/team-a/x/y/blobs/uploads/', basicAuthorization(robot));
    assertOciError(response, 403, 'DENIED');
  });

  test('robot token for team-b/app carries no access and gets 403', async () => {
    const body = await fetchToken(server.url, robot, ['repository:team-b/app:pull,push']);
    const response = await registryRequest(server.url, 'post', '/v2/team-b/app/blobs/uploads/', bearerAuthorization(body.token));
    assertOciError(response, 403, 'DENIED');
  });

  test('user with only pull gets 200 on GET tags', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', basicAuthorization(reader));
    assert.equal(response.status, 200);
  });

  test('user with only pull gets 403 on POST upload', async () => {
    const response = await registryRequest(server.url, 'post', '/v2/team-a/app/blobs/uploads/', basicAuthorization(reader));
    assertOciError(response, 403, 'DENIED');
  });

  test('user with only pull gets 403 on PUT manifest', async () => {
    const response = await registryRequest(server.url, 'put', '/v2/team-a/app/manifests/v2', basicAuthorization(reader));
    assertOciError(response, 403, 'DENIED');
  });

  test('user with only pull gets 403 on DELETE manifest', async () => {
    const response = await registryRequest(server.url, 'delete', '/v2/team-a/app/manifests/v1', basicAuthorization(reader));
    assertOciError(response, 403, 'DENIED');
  });

  test('pull-only user gets 403 on DELETE with a delete token', async () => {
    const { token } = await fetchToken(server.url, reader, ['repository:team-a/app:pull,delete']);
    const response = await registryRequest(server.url, 'delete', '/v2/team-a/app/manifests/v1', bearerAuthorization(token));
    assertOciError(response, 403, 'DENIED');
  });

  test('disabled user gets 401 with a token issued before', async () => {
    const user = await createTestUser(server.db, 'to-disable-1');
    await grantToUser(server.db, user.username, 'team-a/**', ['pull']);
    const { token } = await fetchToken(server.url, user, ['repository:team-a/app:pull']);
    const before = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', bearerAuthorization(token));
    assert.equal(before.status, 200);

    await server.db('users').where({ username: user.username }).update({ disabled_at: server.db.fn.now() });
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', bearerAuthorization(token));
    assertChallengeError(response, 'invalid_token');
  });

  test('disabled user gets 401 with Basic credentials', async () => {
    const user = await createTestUser(server.db, 'to-disable-2');
    await grantToUser(server.db, user.username, 'team-a/**', ['pull']);
    await server.db('users').where({ username: user.username }).update({ disabled_at: server.db.fn.now() });
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', basicAuthorization(user));
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('disabled user gets 401 on grant_type=refresh_token', async () => {
    const user = await createTestUser(server.db, 'to-disable-3');
    const { refresh_token: refreshToken } = await fetchToken(server.url, user, [], { offline_token: 'true', client_id: 'test' });
    assert.ok(refreshToken);

    await server.db('users').where({ username: user.username }).update({ disabled_at: server.db.fn.now() });
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: refreshToken, service: 'portcullis', client_id: 'test' });
    assert.equal(response.status, 401);
  });

  test('revoked robot gets 401 with a token issued before', async () => {
    const revoked = await createTestRobot(server.db, 'to-revoke-1', [{ pattern: 'team-a/**', permissions: ['pull'] }]);
    const { token } = await fetchToken(server.url, revoked, ['repository:team-a/app:pull']);
    const before = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', bearerAuthorization(token));
    assert.equal(before.status, 200);

    await server.db('robots').where({ name: 'to-revoke-1' }).update({ revoked_at: server.db.fn.now() });
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', bearerAuthorization(token));
    assertChallengeError(response, 'invalid_token');
  });

  test('revoked robot gets 401 with Basic credentials', async () => {
    const revoked = await createTestRobot(server.db, 'to-revoke-2', [{ pattern: 'team-a/**', permissions: ['pull'] }]);
    await server.db('robots').where({ name: 'to-revoke-2' }).update({ revoked_at: server.db.fn.now() });
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', basicAuthorization(revoked));
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('revoked robot gets 401 on grant_type=refresh_token', async () => {
    const revoked = await createTestRobot(server.db, 'to-revoke-3', [{ pattern: 'team-a/**', permissions: ['pull'] }]);
    const { refresh_token: refreshToken } = await fetchToken(server.url, revoked, [], { offline_token: 'true', client_id: 'test' });
    assert.ok(refreshToken);

    await server.db('robots').where({ name: 'to-revoke-3' }).update({ revoked_at: server.db.fn.now() });
    const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: refreshToken, service: 'portcullis', client_id: 'test' });
    assert.equal(response.status, 401);
  });

  test('removed grant gets 403 with a token issued before', async () => {
    const user = await createTestUser(server.db, 'loses-grant');
    await grantToUser(server.db, user.username, 'team-a/**', ['pull']);
    const { token } = await fetchToken(server.url, user, ['repository:team-a/app:pull']);
    const before = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', bearerAuthorization(token));
    assert.equal(before.status, 200);

    const row = await server.db('users').where({ username: user.username }).first('id');
    await server.db('grants').where({ user_id: row.id }).delete();
    const response = await registryRequest(server.url, 'get', '/v2/team-a/app/tags/list', bearerAuthorization(token));
    assertOciError(response, 403, 'DENIED');
  });
});

describe('anonymous pull on /v2', () => {
  let server: TestServer;
  let defaultServer: TestServer;

  before(async () => {
    server = await startTestServer({ auth: { anonymousPullPatterns: ['public/**'] } });
    const admin = new RegistryClient(server.url, server.admin);
    await certify(server.db, 'public/x', (await admin.pushImage('public/x', 'v1')).digest);
    await certify(server.db, 'private/x', (await admin.pushImage('private/x', 'v1')).digest);
    defaultServer = await startTestServer();
    const defaultAdmin = new RegistryClient(defaultServer.url, defaultServer.admin);
    await certify(defaultServer.db, 'public/x', (await defaultAdmin.pushImage('public/x', 'v1')).digest);
  });
  after(async () => {
    await server.close();
    await defaultServer.close();
  });

  test('pull of public/x without credentials returns 200', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/public/x/tags/list', null);
    assert.equal(response.status, 200);
  });

  test('anonymous token carries pull on public/x only', async () => {
    const { token } = await fetchToken(server.url, null, ['repository:public/x:pull,push', 'repository:private/x:pull']);
    assert.deepEqual(decodeJwt(token).payload.access, [{ type: 'repository', name: 'public/x', actions: ['pull'] }]);
  });

  test('pull of public/x with an anonymous token returns 200', async () => {
    const { token } = await fetchToken(server.url, null, ['repository:public/x:pull']);
    const response = await registryRequest(server.url, 'get', '/v2/public/x/tags/list', bearerAuthorization(token));
    assert.equal(response.status, 200);
  });

  test('push to public/x without credentials returns 401', async () => {
    const response = await registryRequest(server.url, 'post', '/v2/public/x/blobs/uploads/', null);
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('push to public/x with an anonymous token returns 401', async () => {
    const { token } = await fetchToken(server.url, null, ['repository:public/x:pull,push']);
    const response = await registryRequest(server.url, 'post', '/v2/public/x/blobs/uploads/', bearerAuthorization(token));
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('pull of private/x without credentials returns 401', async () => {
    const response = await registryRequest(server.url, 'get', '/v2/private/x/tags/list', null);
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('pull of public/x with an anonymous token for another repository returns 401', async () => {
    const { token } = await fetchToken(server.url, null, ['repository:public/y:pull']);
    const response = await registryRequest(server.url, 'get', '/v2/public/x/tags/list', bearerAuthorization(token));
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('pull without credentials returns 401 when anonymous pull is off', async () => {
    const response = await registryRequest(defaultServer.url, 'get', '/v2/public/x/tags/list', null);
    assertOciError(response, 401, 'UNAUTHORIZED');
  });

  test('pull with an anonymous token returns 401 when anonymous pull is off', async () => {
    const { token } = await fetchToken(defaultServer.url, null, ['repository:public/x:pull']);
    const response = await registryRequest(defaultServer.url, 'get', '/v2/public/x/tags/list', bearerAuthorization(token));
    assertOciError(response, 401, 'UNAUTHORIZED');
  });
});

describe('login rate limits', () => {
  const LIMIT = 3;

  /** Sends LIMIT failed logins for a username on GET /token and asserts each is 401. */
  async function failLogins(server: TestServer, username: string): Promise<void> {
    for (let attempt = 1; attempt <= LIMIT; attempt++) {
      const response = await requestToken(server.url, { username, password: `wrong-${attempt}` }, []);
      assert.equal(response.status, 401, `failed login ${attempt} of ${username}`);
    }
  }

  describe('per username', () => {
    let server: TestServer;

    before(async () => {
      server = await startTestServer({ auth: { maxFailuresPerUser: LIMIT, maxFailuresPerAddress: 1000 } });
      await createTestUser(server.db, 'victim-token');
      await createTestUser(server.db, 'victim-basic');
      await createTestUser(server.db, 'victim-post');
      await createTestUser(server.db, 'bystander');
    });
    after(() => server.close());

    test('fourth failed login on GET /token returns 429 TOOMANYREQUESTS', async () => {
      await failLogins(server, 'victim-token');
      const response = await requestToken(server.url, { username: 'victim-token', password: 'wrong-4' }, []);
      assertOciError(response, 429, 'TOOMANYREQUESTS');
      assert.match(String(response.headers['retry-after']), /^[1-9][0-9]*$/);
    });

    test('correct password during the lockout returns 429 on GET /token', async () => {
      const response = await requestToken(server.url, { username: 'victim-token', password: 'victim-token-password' }, []);
      assertOciError(response, 429, 'TOOMANYREQUESTS');
    });

    test('correct password during the lockout returns 429 with Basic on /v2', async () => {
      const response = await registryRequest(server.url, 'get', '/v2/', basicAuthorization({ username: 'victim-token', password: 'victim-token-password' }));
      assertOciError(response, 429, 'TOOMANYREQUESTS');
    });

    test('fourth failed Basic login on /v2 returns 429 with Retry-After', async () => {
      for (let attempt = 1; attempt <= LIMIT; attempt++) {
        const response = await registryRequest(server.url, 'get', '/v2/', basicAuthorization({ username: 'victim-basic', password: `wrong-${attempt}` }));
        assert.equal(response.status, 401, `failed login ${attempt}`);
      }
      const response = await registryRequest(server.url, 'get', '/v2/', basicAuthorization({ username: 'victim-basic', password: 'wrong-4' }));
      assertOciError(response, 429, 'TOOMANYREQUESTS');
      assert.match(String(response.headers['retry-after']), /^[1-9][0-9]*$/);
    });

    test('fourth failed grant_type=password returns 429', async () => {
      for (let attempt = 1; attempt <= LIMIT; attempt++) {
        const response = await postTokenForm(server.url, { grant_type: 'password', username: 'victim-post', password: `wrong-${attempt}`, service: 'portcullis', client_id: 'test' });
        assert.equal(response.status, 401, `failed login ${attempt}`);
      }
      const response = await postTokenForm(server.url, { grant_type: 'password', username: 'victim-post', password: 'victim-post-password', service: 'portcullis', client_id: 'test' });
      assertOciError(response, 429, 'TOOMANYREQUESTS');
    });

    test('concurrent guesses beyond the limit return 429', async () => {
      await createTestUser(server.db, 'victim-parallel');
      const responses = await Promise.all(Array.from({ length: 20 }, (_, attempt) => requestToken(server.url, { username: 'victim-parallel', password: `guess-${attempt}` }, [])));
      const statuses = responses.map((response) => response.status);
      assert.equal(statuses.filter((status) => status === 401).length, LIMIT, `statuses: ${statuses.join(',')}`);
      assert.equal(statuses.filter((status) => status === 429).length, 20 - LIMIT, `statuses: ${statuses.join(',')}`);
    });

    test('concurrent logins with one robot secret all return 200', async () => {
      const robot = await createTestRobot(server.db, 'shared-puller', []);
      const responses = await Promise.all(Array.from({ length: 20 }, () => requestToken(server.url, robot, [])));
      assert.deepEqual(
        responses.map((response) => response.status),
        Array.from({ length: 20 }, () => 200),
      );
    });

    test('another username still logs in', async () => {
      const response = await requestToken(server.url, { username: 'bystander', password: 'bystander-password' }, []);
      assert.equal(response.status, 200);
    });
  });

  describe('per client address', () => {
    let server: TestServer;

    before(async () => {
      server = await startTestServer({ auth: { maxFailuresPerUser: 1000, maxFailuresPerAddress: LIMIT } });
    });
    after(() => server.close());

    test('fourth failed login from one address returns 429 for a new username', async () => {
      for (let attempt = 1; attempt <= LIMIT; attempt++) {
        const response = await requestToken(server.url, { username: `guess-${attempt}`, password: 'wrong' }, []);
        assert.equal(response.status, 401, `failed login ${attempt}`);
      }
      const response = await requestToken(server.url, { username: 'guess-4', password: 'wrong' }, []);
      assertOciError(response, 429, 'TOOMANYREQUESTS');
      assert.match(String(response.headers['retry-after']), /^[1-9][0-9]*$/);
    });

    test('correct password from the locked address returns 429', async () => {
      const response = await requestToken(server.url, server.admin, []);
      assertOciError(response, 429, 'TOOMANYREQUESTS');
    });
  });
});
