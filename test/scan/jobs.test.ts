/**
 * Scan jobs against real PostgreSQL, pg-boss and the filesystem store. A
 * pushed image is picked up and finished, and a stop in the middle of a slow
 * scan is retried by another worker. An expired lease is taken over, and two
 * workers never scan one digest at the same time, which the claim log in
 * scan_runs shows without relying on timing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { defineScanJob, type ScanJobSettings } from '../../src/jobs/scan-job.js';
import { JobQueue } from '../../src/jobs/queue.js';
import { ScanRunner, type ScanLeaseSettings } from '../../src/scan/runner.js';
import { ImageScanner } from '../../src/scan/scanner.js';
import { SCAN_JOB } from '../../src/scan/scheduler.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { RegistryClient, uniqueRepository } from '../helpers/registry-client.js';
import { imageConfig, pushLayeredImage, tarGzLayer, waitForScanState } from '../helpers/scan-images.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const JOB_SETTINGS: ScanJobSettings = { retryLimit: 5, retryDelaySeconds: 1, expireInSeconds: 120, concurrency: 2 };
const LEASE: ScanLeaseSettings = { leaseSeconds: 4, renewSeconds: 1 };

interface RunRow {
  digest: string;
  job_id: string;
  lease_owner: string;
  started_at: Date;
  finished_at: Date | null;
  outcome: string | null;
}

/** Wraps a store so that every chunk of a read arrives after a delay, and a scan takes long enough to be interrupted. */
function slowStore(store: BlobStore, delayMs: number): BlobStore {
  return Object.assign(Object.create(store) as BlobStore, {
    read: async (key: string, range?: { start: number; end: number }): Promise<Readable> => {
      const source = await store.read(key, range);
      const delay = new Transform({
        transform(chunk, _encoding, callback) {
          setTimeout(() => callback(null, chunk), delayMs);
        },
      });
      source.on('error', (error) => delay.destroy(error));
      delay.on('close', () => source.destroy());
      return source.pipe(delay);
    },
  });
}

describe('scan jobs', () => {
  let server: TestServer;
  let client: RegistryClient;
  const workers: JobQueue[] = [];
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

  before(async () => {
    server = await startTestServer({ scanSettings: { job: JOB_SETTINGS, lease: LEASE } });
    client = new RegistryClient(server.url, server.admin);
  });
  after(async () => {
    for (const worker of workers) await worker.stop();
    await server.close();
  });

  /** Starts a process's worth of scan workers on the test server's database, reading blobs through `store`. */
  async function startWorker(store: BlobStore): Promise<JobQueue> {
    const queue = new JobQueue({ connectionString: server.databaseUrl, logger, workers: true, pollingIntervalSeconds: 0.5 });
    defineScanJob(queue, new ScanRunner({ db: server.db, scanner: new ImageScanner({ db: server.db, store }), logger, lease: LEASE }), JOB_SETTINGS);
    await queue.start();
    workers.push(queue);
    return queue;
  }

  async function runsOf(digest: string): Promise<RunRow[]> {
    return server.db('scan_runs').where({ digest }).orderBy('id').select('digest', 'job_id', 'lease_owner', 'started_at', 'finished_at', 'outcome');
  }

  /** Pushes an image with one ordinary layer and a filler file of `fillerBytes` random text. */
  async function pushPlainImage(fillerBytes = 0): Promise<string> {
    const layer = await tarGzLayer({ 'etc/motd': 'welcome\n', ...(fillerBytes > 0 ? { 'var/lib/data.txt': randomBytes(fillerBytes).toString('base64') } : {}) });
    return (await pushLayeredImage(client, uniqueRepository('jobs'), imageConfig(), [layer])).digest;
  }

  describe('one worker', () => {
    let worker: JobQueue;
    before(async () => {
      worker = await startWorker(server.store);
    });
    after(() => worker.stop());

    test('finishes a pushed image as clean', async () => {
      const digest = await pushPlainImage();
      assert.equal(await waitForScanState(server.db, digest, ['clean', 'findings', 'failed']), 'clean');
    });

    test('logs one finished run of a pushed image', async () => {
      const digest = await pushPlainImage();
      await waitForScanState(server.db, digest, ['clean', 'findings', 'failed']);
      assert.deepEqual(
        (await runsOf(digest)).map((run) => run.outcome),
        ['clean'],
      );
    });

    test('fails a scan whose layer is missing from storage', async () => {
      const digest = await pushPlainImage();
      const manifest = JSON.parse((await server.db('manifests').where({ digest }).first('content')).content.toString()) as { layers: Array<{ digest: string }> };
      await server.db('scans').where({ digest }).update({ state: 'failed' });
      const layer = manifest.layers[0]?.digest as string;
      await server.store.delete(`blobs/sha256/${layer.slice(7, 9)}/${layer.slice(7)}`);
      await server.db('scans').where({ digest }).update({ state: 'queued' });
      await server.jobs.send(SCAN_JOB, { digest });
      assert.equal(await waitForScanState(server.db, digest, ['clean', 'findings', 'failed']), 'failed');
      const row = await server.db('scans').where({ digest }).first('error');
      assert.match(row.error, /is missing from storage/);
    });

    test('stores more findings than one statement can bind', async () => {
      // 9000 findings of 8 columns each need 72000 parameters, more than the 65535 one PostgreSQL statement may bind.
      const env = Array.from({ length: 9000 }, (_, index) => `SERVICE_${index}_PASSWORD=${randomBytes(12).toString('hex')}x`);
      const digest = (await pushLayeredImage(client, uniqueRepository('jobs'), imageConfig({ env }), [await tarGzLayer({ 'etc/motd': 'welcome\n' })])).digest;
      assert.equal(await waitForScanState(server.db, digest, ['clean', 'findings', 'failed']), 'findings');
      const row = await server.db('scan_findings').where({ digest }).count<{ count: string }>('* as count').first();
      assert.equal(Number(row?.count), 9000);
    });

    test('takes over a scan whose lease expired', async () => {
      const digest = await pushPlainImage();
      // Stands for a run of a process that died: its claim is in the log and its lease has expired.
      await server.db('scans').where({ digest }).update({ state: 'scanning', lease_owner: 'dead-run', lease_expires_at: server.db.raw(`now() - interval '1 second'`) });
      await server.db('scan_runs').insert({ digest, job_id: 'dead-job', lease_owner: 'dead-run', attempt: 1 });
      await server.jobs.send(SCAN_JOB, { digest });
      await waitForScanState(server.db, digest, ['clean', 'findings', 'failed']);
      assert.deepEqual(
        (await runsOf(digest)).map((run) => run.outcome),
        ['lost', 'clean'],
      );
    });
  });

  test('a scan stopped in the middle continues on a new worker', async () => {
    const digest = await pushPlainImage(6 * 1024 * 1024);
    const first = await startWorker(slowStore(server.store, 40));
    await waitForScanState(server.db, digest, ['scanning']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await first.stop();
    assert.equal((await server.db('scans').where({ digest }).first('state')).state, 'queued');

    const second = await startWorker(server.store);
    assert.equal(await waitForScanState(server.db, digest, ['clean', 'findings', 'failed']), 'clean');
    await second.stop();
    assert.deepEqual(
      (await runsOf(digest)).map((run) => run.outcome),
      ['retry', 'clean'],
    );
  });

  test('two workers never scan one digest at the same time', async () => {
    const digests: string[] = [];
    for (let index = 0; index < 4; index++) digests.push(await pushPlainImage(512 * 1024));
    // A second job per digest makes both workers go for every digest.
    for (const digest of digests) await server.jobs.send(SCAN_JOB, { digest });
    const replicas = [await startWorker(slowStore(server.store, 5)), await startWorker(slowStore(server.store, 5))];

    for (const digest of digests) await waitForScanState(server.db, digest, ['clean', 'findings', 'failed'], 90_000);
    for (const replica of replicas) await replica.stop();

    for (const digest of digests) {
      const runs = await runsOf(digest);
      assert.equal(runs.filter((run) => run.outcome === 'clean').length, 1, `${digest} has more than one finished run`);
      for (let index = 1; index < runs.length; index++) {
        const previous = runs[index - 1] as RunRow;
        const current = runs[index] as RunRow;
        assert.ok(previous.finished_at !== null, `run ${previous.lease_owner} of ${digest} never finished`);
        assert.ok(previous.finished_at <= current.started_at, `runs ${previous.lease_owner} and ${current.lease_owner} of ${digest} overlap`);
      }
    }
  });
});
