import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { RegistryClient, uniqueRepository } from '../helpers/registry-client.js';
import { imageConfig, pushLayeredImage, waitForScanState } from '../helpers/scan-images.js';
import { killGatewayProcess, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const ADMIN = { username: 'admin', password: 'scan-crash-admin-password' };
const MIB = 1024 * 1024;
const LEASE_SECONDS = 3;

function startGateway(databaseUrl: string, dataDir: string): Promise<GatewayProcess> {
  return startGatewayProcess(databaseUrl, dataDir, { PORTCULLIS_ADMIN_PASSWORD: ADMIN.password, SCAN_LEASE_SECONDS: String(LEASE_SECONDS) });
}

/** Builds a gzip tar layer of text files that expands to `totalMiB` but compresses to a few MiB, so its scan takes seconds. */
async function largeTextLayer(totalMiB: number, fileMiB = 16): Promise<Buffer> {
  const pack = tar.pack();
  const gzip = createGzip({ level: 1 });
  const chunks: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
  const finished = new Promise((resolve, reject) => {
    gzip.on('end', resolve);
    gzip.on('error', reject);
  });
  pack.pipe(gzip);
  const block = Buffer.from('deploy step finished without errors; nothing to report here\n'.repeat(1024));
  for (let index = 0; index < totalMiB / fileMiB; index += 1) {
    const entry = pack.entry({ name: `var/log/app-${index}.log`, size: fileMiB * MIB });
    for (let written = 0; written < fileMiB * MIB; written += block.length) {
      const piece = block.subarray(0, Math.min(block.length, fileMiB * MIB - written));
      if (!entry.write(piece)) await new Promise<void>((resolve) => entry.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve) => entry.end(() => resolve()));
  }
  pack.finalize();
  await finished;
  return Buffer.concat(chunks);
}

describe('a gateway killed in the middle of a secret scan', () => {
  let database: TestDatabase;
  let dataDir: string;
  let gateway: GatewayProcess;
  let digest: string;
  let interrupted: boolean;

  before(async () => {
    database = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-scan-crash-'));
    gateway = await startGateway(database.url, dataDir);
    const layer = await largeTextLayer(2048);
    const image = await pushLayeredImage(new RegistryClient(gateway.url, ADMIN), uniqueRepository('crash/scan'), imageConfig(), [layer], 'v1');
    digest = image.digest;
    interrupted = (await waitForScanState(database.db, digest, ['scanning', 'clean', 'findings', 'failed'])) === 'scanning';
    await killGatewayProcess(gateway);
    // Past the lease, the restarted gateway finds the scan abandoned as soon as it starts.
    await new Promise((resolve) => setTimeout(resolve, (LEASE_SECONDS + 1) * 1000));
    gateway = await startGateway(database.url, dataDir);
  });

  after(async () => {
    await killGatewayProcess(gateway);
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('the kill came while the scan ran', () => {
    assert.equal(interrupted, true);
  });

  test('the restarted gateway finishes the scan', async () => {
    assert.equal(await waitForScanState(database.db, digest, ['clean', 'findings', 'failed'], 120_000), 'clean');
  });

  test('the scan was claimed again after the kill', async () => {
    const runs: Array<{ outcome: string | null }> = await database.db('scan_runs').where({ digest }).orderBy('started_at').select('outcome');
    assert.deepEqual(runs.map((run) => run.outcome), ['lost', 'clean']);
  });
});
