import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import type { RegistryEvent, RegistryEventSink } from '../../src/audit/registry-events.js';
import { blobKey } from '../../src/storage/keys.js';
import { basicAuthorization, createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';
import { isSkopeoAvailable } from '../helpers/skopeo.js';
import type { ImageFixture } from '../helpers/images.js';
import { assertDocumented } from '../helpers/openapi.js';
import { startUpstreamRegistry, type UpstreamRegistry } from '../upstream/upstream-registry.js';

const skopeoMissing = (await isSkopeoAvailable()) ? false : 'skopeo is not installed';

interface ImportBody {
  id: string;
  source: string;
  target: string;
  status: string;
  message: string | null;
  digest: string | null;
  progress: { manifestsCopied: number; blobsCopied: number; blobsSkipped: number; bytesCopied: number };
}

/** Starts a TCP server on 127.0.0.1 that counts the connections it accepts and closes each one. */
async function startListener(): Promise<{ host: string; connections: () => number; close(): Promise<void> }> {
  let count = 0;
  const server: Server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Polls an import until it succeeded or failed, and returns it. */
async function waitForImport(server: TestServer, id: string, timeoutMs = 30_000): Promise<ImportBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await request(server.url).get(`/api/v1/imports/${id}`).set('Authorization', server.adminAuthorization);
    assert.equal(response.status, 200, response.text);
    const body = response.body as ImportBody;
    if (body.status === 'succeeded' || body.status === 'failed') return body;
    if (Date.now() > deadline) assert.fail(`import ${id} is still ${body.status} after ${timeoutMs} ms: ${response.text}`);
    await sleep(200);
  }
}

/** Asserts that a repository contains a manifest with exactly these bytes. */
async function assertManifestStored(server: TestServer, repository: string, digest: string, bytes?: Buffer): Promise<void> {
  const row = await server.db('manifests as m').join('repositories as r', 'r.id', 'm.repository_id').where({ 'r.name': repository, 'm.digest': digest }).first('m.content');
  assert.ok(row, `manifest ${digest} is not in ${repository}`);
  if (bytes) assert.deepEqual(row.content, bytes);
}

/** Asserts that every blob of a fixture is linked to a repository and stored with its size. */
async function assertBlobsStored(server: TestServer, repository: string, fixture: ImageFixture): Promise<void> {
  for (const blob of fixture.blobs) {
    const link = await server.db('repository_blobs as l').join('repositories as r', 'r.id', 'l.repository_id').where({ 'r.name': repository, 'l.digest': blob.digest }).first('l.digest');
    assert.ok(link, `blob ${blob.digest} is not linked to ${repository}`);
    const stored = await server.store.stat(blobKey(blob.digest));
    assert.equal(stored?.size, blob.size, `blob ${blob.digest} is not stored with its size`);
  }
}

describe('imports from an allowlisted upstream', { skip: skopeoMissing }, () => {
  let upstream: UpstreamRegistry;
  let gateway: TestServer;
  let admin: string;
  const events: RegistryEvent[] = [];
  const recorder: RegistryEventSink = {
    record: async (_context, event) => {
      events.push(event);
    },
  };

  function createImport(body: Record<string, unknown>, authorization = admin) {
    return request(gateway.url).post('/api/v1/imports').set('Authorization', authorization).send(body);
  }

  before(async () => {
    upstream = await startUpstreamRegistry();
    gateway = await startTestServer({ jobs: true, events: recorder });
    admin = gateway.adminAuthorization;
    const response = await request(gateway.url)
      .post('/api/v1/upstreams')
      .set('Authorization', admin)
      .send({ host: upstream.server.host, credentials: upstream.robot, insecureHttp: true });
    assert.equal(response.status, 201, response.text);
    assertDocumented('/api/v1/upstreams', 'post', response);
  });
  after(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  test('upstream list hides credentials', async () => {
    const response = await request(gateway.url).get('/api/v1/upstreams').set('Authorization', admin);

    assert.equal(response.status, 200);
    assertDocumented('/api/v1/upstreams', 'get', response);
    assert.deepEqual(
      response.body.upstreams.map((entry: { host: string; hasCredentials: boolean; insecureHttp: boolean }) => [entry.host, entry.hasCredentials, entry.insecureHttp]),
      [[upstream.server.host, true, true]],
    );
    assert.ok(!response.text.includes(upstream.robot.password), 'the upstream password was returned');
    assert.ok(events.some((event) => event.action === 'upstream.change' && event.change === 'create'));
  });

  test('single image import succeeds', async () => {
    const { single } = upstream;
    const created = await createImport({ source: `${upstream.server.host}/${single.repository}:${single.tag}`, target: 'mirror/single:1.0' });
    assert.equal(created.status, 202, created.text);
    assertDocumented('/api/v1/imports', 'post', created);
    assert.equal(created.body.status, 'queued');
    assert.equal(created.headers.location, `/api/v1/imports/${created.body.id}`);

    const finished = await waitForImport(gateway, created.body.id);
    assert.equal(finished.status, 'succeeded', finished.message ?? '');
    assert.equal(finished.digest, single.fixture.manifest.digest);
    assert.equal(finished.progress.blobsCopied, single.fixture.blobs.length);
    assert.equal(finished.progress.manifestsCopied, 1);
    await assertManifestStored(gateway, 'mirror/single', single.fixture.manifest.digest, single.fixture.manifestBytes);
    await assertBlobsStored(gateway, 'mirror/single', single.fixture);
    const tag = await gateway.db('tags as t').join('repositories as r', 'r.id', 't.repository_id').join('manifests as m', 'm.id', 't.manifest_id').where({ 'r.name': 'mirror/single', 't.name': '1.0' }).first('m.digest');
    assert.equal(tag?.digest, single.fixture.manifest.digest);

    const statuses = events.filter((event) => event.action === 'import.change' && event.importId === created.body.id).map((event) => (event as { status: string }).status);
    assert.deepEqual(statuses, ['queued', 'running', 'succeeded']);
    const got = await request(gateway.url).get(`/api/v1/imports/${created.body.id}`).set('Authorization', admin);
    assertDocumented('/api/v1/imports/{id}', 'get', got);
  });

  test('imported image is queued for a secret scan', async () => {
    const { single } = upstream;
    const scan: { state: string } | undefined = await gateway.db('scans').where({ digest: single.fixture.manifest.digest }).first('state');
    assert.notEqual(scan, undefined, 'the imported image has no scan');
  });

  test('index import copies every platform', async () => {
    const { index } = upstream;
    const created = await createImport({ source: `${upstream.server.host}/${index.repository}:${index.tag}`, target: 'mirror/multi-arch' });
    assert.equal(created.status, 202, created.text);

    const finished = await waitForImport(gateway, created.body.id);
    assert.equal(finished.status, 'succeeded', finished.message ?? '');
    assert.equal(finished.digest, index.fixture.manifest.digest);
    assert.equal(finished.target, `mirror/multi-arch:${index.tag}`);
    assert.equal(finished.progress.manifestsCopied, index.fixture.children.length + 1);
    await assertManifestStored(gateway, 'mirror/multi-arch', index.fixture.manifest.digest, index.fixture.manifestBytes);
    for (const child of index.fixture.children) await assertManifestStored(gateway, 'mirror/multi-arch', child.digest);
    await assertBlobsStored(gateway, 'mirror/multi-arch', index.fixture);
  });

  test('import by digest stores no tag', async () => {
    const { single } = upstream;
    const created = await createImport({ source: `${upstream.server.host}/${single.repository}@${single.fixture.manifest.digest}`, target: 'mirror/by-digest' });
    const finished = await waitForImport(gateway, created.body.id);

    assert.equal(finished.status, 'succeeded', finished.message ?? '');
    assert.equal(finished.target, 'mirror/by-digest');
    await assertManifestStored(gateway, 'mirror/by-digest', single.fixture.manifest.digest);
    const tags = await gateway.db('tags as t').join('repositories as r', 'r.id', 't.repository_id').where({ 'r.name': 'mirror/by-digest' }).select('t.name');
    assert.deepEqual(tags, []);
  });

  test('repeated import skips blobs the target has', async () => {
    const { single } = upstream;
    const created = await createImport({ source: `${upstream.server.host}/${single.repository}:${single.tag}`, target: 'mirror/single:again' });
    const finished = await waitForImport(gateway, created.body.id);

    assert.equal(finished.status, 'succeeded', finished.message ?? '');
    assert.equal(finished.progress.blobsCopied, 0);
    assert.equal(finished.progress.blobsSkipped, single.fixture.blobs.length);
  });

  test('missing upstream tag fails with a message', async () => {
    const created = await createImport({ source: `${upstream.server.host}/${upstream.single.repository}:no-such-tag`, target: 'mirror/missing' });
    const finished = await waitForImport(gateway, created.body.id);

    assert.equal(finished.status, 'failed');
    assert.match(finished.message ?? '', /not found/);
    const listed = await request(gateway.url).get('/api/v1/imports').query({ status: 'failed' }).set('Authorization', admin);
    assertDocumented('/api/v1/imports', 'get', listed);
    assert.deepEqual(
      listed.body.imports.map((entry: ImportBody) => entry.id),
      [created.body.id],
    );
  });

  test('host not on the allowlist is refused without a connection', async () => {
    const listener = await startListener();
    try {
      const response = await createImport({ source: `${listener.host}/team/app:1.0`, target: 'mirror/refused' });

      assert.equal(response.status, 403, response.text);
      assertDocumented('/api/v1/imports', 'post', response);
      assert.equal(response.body.error.details.reason, 'not_allowlisted');
      assert.match(response.body.error.message, /not on the allowlist/);
      await sleep(1000);
      assert.equal(listener.connections(), 0);
      assert.equal((await gateway.db('imports').where({ target_repository: 'mirror/refused' })).length, 0);
    } finally {
      await listener.close();
    }
  });

  test('https-only upstream given as http is refused', async () => {
    const listener = await startListener();
    try {
      const added = await request(gateway.url).post('/api/v1/upstreams').set('Authorization', admin).send({ host: listener.host });
      assert.equal(added.status, 201, added.text);
      assert.equal(added.body.insecureHttp, false);

      const response = await createImport({ source: `http://${listener.host}/team/app:1.0`, target: 'mirror/insecure' });

      assert.equal(response.status, 403, response.text);
      assert.equal(response.body.error.details.reason, 'insecure_http_not_allowed');
      await sleep(500);
      assert.equal(listener.connections(), 0);
    } finally {
      await request(gateway.url).delete(`/api/v1/upstreams/${listener.host}`).set('Authorization', admin);
      await listener.close();
    }
  });

  test('invalid source and target are 400', async () => {
    const response = await createImport({ source: 'no-host-here', target: 'Not/Valid' });

    assert.equal(response.status, 400);
    assertDocumented('/api/v1/imports', 'post', response);
    assert.deepEqual(
      response.body.error.details.problems.map((problem: { field: string }) => problem.field),
      ['source', 'target'],
    );
  });

  test('duplicate upstream is 409', async () => {
    const response = await request(gateway.url).post('/api/v1/upstreams').set('Authorization', admin).send({ host: upstream.server.host.toUpperCase() });
    assert.equal(response.status, 409);
    assertDocumented('/api/v1/upstreams', 'post', response);
  });

  test('non-admin is 403', async () => {
    const developer = basicAuthorization(await createTestUser(gateway.db, 'developer'));

    const imported = await createImport({ source: `${upstream.server.host}/${upstream.single.repository}:v1`, target: 'mirror/forbidden' }, developer);
    const listed = await request(gateway.url).get('/api/v1/upstreams').set('Authorization', developer);
    const added = await request(gateway.url).post('/api/v1/upstreams').set('Authorization', developer).send({ host: 'registry.example.test' });

    assert.equal(imported.status, 403);
    assertDocumented('/api/v1/imports', 'post', imported);
    assert.equal(listed.status, 403);
    assertDocumented('/api/v1/upstreams', 'get', listed);
    assert.equal(added.status, 403);
  });

  test('import grant allows its repositories only', async () => {
    const login = await createTestUser(gateway.db, 'team-importer');
    await grantToUser(gateway.db, 'team-importer', 'team/**', ['import']);
    const importer = basicAuthorization(login);
    const source = `${upstream.server.host}/${upstream.single.repository}:v1`;

    const inside = await createImport({ source, target: 'team/app:1.0' }, importer);
    const outside = await createImport({ source, target: 'other/app:1.0' }, importer);
    const own = await request(gateway.url).get('/api/v1/imports').set('Authorization', importer);

    assert.equal(inside.status, 202, inside.text);
    assert.equal(outside.status, 403);
    assert.deepEqual(
      own.body.imports.map((entry: ImportBody) => entry.id),
      [inside.body.id],
    );
    assert.equal((await waitForImport(gateway, inside.body.id)).status, 'succeeded');
  });
});

describe('import jobs across restarts', { skip: skopeoMissing }, () => {
  let upstream: UpstreamRegistry;
  before(async () => {
    upstream = await startUpstreamRegistry();
  });
  after(async () => {
    await upstream?.close();
  });

  test('queued import completes on a server started later', async () => {
    const first = await startTestServer();
    let second: TestServer | undefined;
    try {
      const added = await request(first.url).post('/api/v1/upstreams').set('Authorization', first.adminAuthorization).send({ host: upstream.server.host, credentials: upstream.robot, insecureHttp: true });
      assert.equal(added.status, 201, added.text);
      const { single } = upstream;
      const created = await request(first.url)
        .post('/api/v1/imports')
        .set('Authorization', first.adminAuthorization)
        .send({ source: `${upstream.server.host}/${single.repository}:${single.tag}`, target: 'mirror/later' });
      assert.equal(created.status, 202, created.text);

      await sleep(1000);
      const waiting = await request(first.url).get(`/api/v1/imports/${created.body.id}`).set('Authorization', first.adminAuthorization);
      assert.equal(waiting.body.status, 'queued', 'a server without workers ran the job');

      second = await startTestServer({ shareWith: first, jobs: true });
      const finished = await waitForImport(second, created.body.id);
      assert.equal(finished.status, 'succeeded', finished.message ?? '');
      await assertManifestStored(second, 'mirror/later', single.fixture.manifest.digest, single.fixture.manifestBytes);
    } finally {
      await second?.close();
      await first.close();
    }
  });
});
