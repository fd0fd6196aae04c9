import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import request from 'supertest';
import { logEventSink } from '../../src/audit/registry-events.js';
import type { PullGate } from '../../src/policy/pull-gate.js';
import { ManifestService } from '../../src/registry/manifests.js';
import { ImportRunner } from '../../src/upstream/import-runner.js';
import type { ImportRow } from '../../src/upstream/imports.js';
import { UpstreamService } from '../../src/upstream/upstreams.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { startFakeUpstream, type FakeUpstream } from './upstream-registry.js';

// Imports never pull from the target, so a gate that denies everything shows that the runner needs none.
const denyAll: PullGate = {
  decide: async () => ({ allowed: false, reason: 'the import runner must not pull' }),
  filterPullable: async () => new Set<string>(),
};

describe('ImportRunner attempts', () => {
  let server: TestServer;
  let fake: FakeUpstream;
  let runner: ImportRunner;

  before(async () => {
    server = await startTestServer();
    fake = await startFakeUpstream((request, response) => {
      if (request.url?.startsWith('/v2/busy/')) {
        response.writeHead(503).end();
        return;
      }
      response.writeHead(404).end();
    });
    const added = await request(server.url).post('/api/v1/upstreams').set('Authorization', server.adminAuthorization).send({ host: fake.host, insecureHttp: true });
    assert.equal(added.status, 201, added.text);

    const { db } = server;
    runner = new ImportRunner({
      db,
      events: logEventSink,
      upstreams: new UpstreamService({ db, events: logEventSink }),
      uploads: server.app.uploads,
      manifests: new ManifestService({ db, events: logEventSink, gate: denyAll }),
      logger: pino({ level: 'silent' }),
    });
  });
  after(async () => {
    await server?.close();
    await fake?.close();
  });

  async function queueImport(source: string): Promise<string> {
    const response = await request(server.url).post('/api/v1/imports').set('Authorization', server.adminAuthorization).send({ source, target: 'mirror/runner' });
    assert.equal(response.status, 202, response.text);
    return response.body.id as string;
  }

  async function importRow(id: string): Promise<ImportRow> {
    const row: ImportRow | undefined = await server.db('imports').where({ id }).first('*');
    assert.ok(row, `import ${id} has no row`);
    return row;
  }

  function attempt(importId: string, retryCount: number, retryLimit: number): Promise<void> {
    return runner.run({ id: importId, data: { importId }, retryCount, retryLimit }, new AbortController().signal);
  }

  test('retryable failure requeues, last one fails', async () => {
    const id = await queueImport(`${fake.host}/busy/app:1.0`);

    await assert.rejects(attempt(id, 0, 1));
    const requeued = await importRow(id);
    assert.equal(requeued.status, 'queued');
    assert.match(requeued.message ?? '', /^attempt 1 failed, retrying: .*503/);
    assert.equal(requeued.attempts, 1);

    await attempt(id, 1, 1);
    const failed = await importRow(id);
    assert.equal(failed.status, 'failed');
    assert.match(failed.message ?? '', /503/);
    assert.equal(failed.attempts, 2);
    assert.ok(failed.finished_at);
  });

  test('not found fails on the first attempt', async () => {
    const id = await queueImport(`${fake.host}/gone/app:1.0`);

    await attempt(id, 0, 3);

    const failed = await importRow(id);
    assert.equal(failed.status, 'failed');
    assert.match(failed.message ?? '', /not found/);
  });

  test('finished import is not run again', async () => {
    const id = await queueImport(`${fake.host}/gone/app:2.0`);
    await server.db('imports').where({ id }).update({ status: 'succeeded' });
    const requestsBefore = fake.requests.length;

    await attempt(id, 0, 3);

    assert.equal((await importRow(id)).status, 'succeeded');
    assert.equal(fake.requests.length, requestsBefore);
  });

  test('upstream removed before the run fails without a connection', async () => {
    const id = await queueImport(`${fake.host}/busy/app:3.0`);
    const removed = await request(server.url).delete(`/api/v1/upstreams/${fake.host}`).set('Authorization', server.adminAuthorization);
    assert.equal(removed.status, 204);
    const requestsBefore = fake.requests.length;

    await attempt(id, 0, 3);

    const failed = await importRow(id);
    assert.equal(failed.status, 'failed');
    assert.match(failed.message ?? '', /no longer on the allowlist/);
    assert.equal(fake.requests.length, requestsBefore);
  });
});
