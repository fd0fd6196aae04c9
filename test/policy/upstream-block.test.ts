/**
 * Names of public registries on /v2: the blocklist rules, and the 403 with
 * the import hint that the gateway sends for them. Every request goes to the
 * local test server only; nothing is fetched from any registry.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { UpstreamBlocklist, upstreamDenialMessage } from '../../src/upstream/blocklist.js';
import { assertOciError, RegistryClient, type OciErrorBody } from '../helpers/registry-client.js';
import { createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';
import { certify } from '../helpers/certification.js';

describe('UpstreamBlocklist', () => {
  const blocklist = new UpstreamBlocklist();
  const cases: Array<{ name: string; registry: string | null }> = [
    { name: 'docker.io/library/nginx', registry: 'docker.io' },
    { name: 'index.docker.io/library/nginx', registry: 'index.docker.io' },
    { name: 'library/nginx', registry: 'docker.io' },
    { name: 'ghcr.io/x/y', registry: 'ghcr.io' },
    { name: 'x.gcr.io/y', registry: 'x.gcr.io' },
    { name: 'gcr.io/project/app', registry: 'gcr.io' },
    { name: 'registry.k8s.io/pause', registry: 'registry.k8s.io' },
    { name: 'public.ecr.aws/team/app', registry: 'public.ecr.aws' },
    { name: 'localhost:5000/x', registry: 'localhost:5000' },
    { name: 'registry.corp.example:443/x', registry: 'registry.corp.example:443' },
    { name: 'Docker.io/library/nginx', registry: 'docker.io' },
    { name: 'my.team/app', registry: null },
    { name: 'team-a/library', registry: null },
    { name: 'library', registry: null },
    { name: 'docker.io', registry: null },
    { name: 'notgcr.io/app', registry: null },
  ];
  for (const { name, registry } of cases) {
    test(`${name} is ${registry === null ? 'allowed' : `blocked as ${registry}`}`, () => {
      assert.equal(blocklist.check(name)?.registry ?? null, registry);
    });
  }

  test('library/ form is imported from docker.io', () => {
    assert.equal(blocklist.check('library/nginx')?.source, 'docker.io/library/nginx');
  });

  test('configured list replaces the default hosts', () => {
    const custom = new UpstreamBlocklist(['registry.corp.example']);
    assert.equal(custom.check('registry.corp.example/x')?.registry, 'registry.corp.example');
    assert.equal(custom.check('quay.io/x/y'), null);
    assert.equal(custom.check('library/nginx')?.registry, 'docker.io');
  });

  test('denial message names the import request', () => {
    const block = blocklist.check('ghcr.io/x/y');
    assert.ok(block);
    assert.match(upstreamDenialMessage('ghcr.io/x/y', block), /POST \/api\/v1\/imports with \{"source": "ghcr\.io\/x\/y:<tag>", "target": "<team>\/<repository>"\}/);
  });
});

describe('public registry names on /v2', () => {
  let server: TestServer;
  let admin: RegistryClient;
  let anonymous: RegistryClient;

  before(async () => {
    server = await startTestServer();
    admin = new RegistryClient(server.url, server.admin);
    anonymous = new RegistryClient(server.url, null);
  });
  after(() => server.close());

  const names = ['docker.io/library/nginx', 'library/nginx', 'ghcr.io/x/y', 'x.gcr.io/y', 'localhost:5000/x'];
  for (const name of names) {
    test(`manifest GET of ${name} returns 403 DENIED with the import hint`, async () => {
      const response = await admin.http.get(`/v2/${name}/manifests/latest`);
      assertOciError(response, 403, 'DENIED');
      const message = (response.body as OciErrorBody).errors[0]?.message ?? '';
      assert.match(message, /never pulls public images/);
      assert.match(message, /POST \/api\/v1\/imports/);
    });
  }

  test('library/nginx explains the registry mirror form', async () => {
    const response = await admin.http.get('/v2/library/nginx/manifests/latest');
    assert.match((response.body as OciErrorBody).errors[0]?.message ?? '', /registry mirror asks for the official image nginx/);
  });

  test('blocked name is denied before authentication', async () => {
    const response = await anonymous.http.get('/v2/docker.io/library/nginx/manifests/latest');
    assertOciError(response, 403, 'DENIED');
  });

  test('blob GET of a blocked name returns 403', async () => {
    const response = await admin.http.get(`/v2/quay.io/team/app/blobs/sha256:${'0'.repeat(64)}`);
    assertOciError(response, 403, 'DENIED');
  });

  test('push to a blocked name returns 403 and creates nothing', async () => {
    const response = await admin.http.post('/v2/docker.io/library/nginx/blobs/uploads/');
    assertOciError(response, 403, 'DENIED');
    const repository = await server.db('repositories').where({ name: 'docker.io/library/nginx' }).first('id');
    assert.equal(repository, undefined);
  });

  test('tags list of a blocked name returns 403', async () => {
    const response = await admin.http.get('/v2/library/nginx/tags/list');
    assertOciError(response, 403, 'DENIED');
  });

  test('my.team/app is pushed and pulled', async () => {
    const image = await admin.pushImage('my.team/app', 'v1');
    await certify(server.db, 'my.team/app', image.digest);
    const login = await createTestUser(server.db, 'my-team-deployer');
    await grantToUser(server.db, login.username, 'my.team/**', ['pull']);
    const response = await new RegistryClient(server.url, login).getBytes('/v2/my.team/app/manifests/v1');
    assert.equal(response.status, 200);
  });

  test('configured entry is blocked on /v2', async () => {
    const custom = await startTestServer({ blockedRegistries: ['registry.corp.example'] });
    try {
      const response = await new RegistryClient(custom.url, custom.admin).http.get('/v2/registry.corp.example/x/manifests/latest');
      assertOciError(response, 403, 'DENIED');
    } finally {
      await custom.close();
    }
  });
});
