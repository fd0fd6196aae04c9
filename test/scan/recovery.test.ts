import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RegistryClient, uniqueRepository } from '../helpers/registry-client.js';
import { imageConfig, pushLayeredImage, tarGzLayer, waitForScanState } from '../helpers/scan-images.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('scans whose run died', () => {
  let server: TestServer;
  let digest: string;
  let recovered: string[];

  before(async () => {
    server = await startTestServer({ jobs: true });
    const layer = await tarGzLayer({ 'etc/motd': 'hello\n' });
    const image = await pushLayeredImage(new RegistryClient(server.url, server.admin), uniqueRepository('recover/app'), imageConfig(), [layer], 'v1');
    digest = image.digest;
    await waitForScanState(server.db, digest, ['clean']);
    // A process killed mid-scan leaves the row in `scanning` with a lease that no run renews.
    await server.db('scans').where({ digest }).update({ state: 'scanning', lease_owner: 'dead-process', lease_expires_at: server.db.raw("now() - interval '1 second'"), finished_at: null });
    recovered = await server.app.recoverScans();
  });

  after(async () => {
    await server.close();
  });

  test('are queued again', () => {
    assert.deepEqual(recovered, [digest]);
  });

  test('finish after being queued again', async () => {
    await waitForScanState(server.db, digest, ['clean']);
    const row: { state: string; lease_owner: string | null } = await server.db('scans').where({ digest }).first('state', 'lease_owner');
    assert.notEqual(row.lease_owner, 'dead-process');
  });

  test('a scan with a live lease is left alone', async () => {
    await server.db('scans').where({ digest }).update({ state: 'scanning', lease_owner: 'live-process', lease_expires_at: server.db.raw("now() + interval '1 minute'") });
    assert.deepEqual(await server.app.recoverScans(), []);
  });
});
