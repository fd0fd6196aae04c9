/**
 * Two app instances on one database, as two replicas: a revocation or a
 * rejection recorded through the first must stop pulls on the second within
 * one second.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryClient, uniqueRepository, type ManifestDocument } from '../helpers/registry-client.js';
import { createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';
import { blobsOf, certify, decide, revoke } from '../helpers/certification.js';

/** Maximum time a change may take to reach the other replica, in milliseconds. */
const PROPAGATION_LIMIT_MS = 1000;

/** Requests a path until it returns `status` or the limit passes; returns the milliseconds it took, or null. */
async function millisecondsUntilStatus(send: () => Promise<{ status: number }>, status: number): Promise<number | null> {
  const start = Date.now();
  while (Date.now() - start <= PROPAGATION_LIMIT_MS) {
    if ((await send()).status === status) return Date.now() - start;
    await sleep(20);
  }
  return null;
}

describe('certification changes across two instances', () => {
  let first: TestServer;
  let second: TestServer;
  let firstAdmin: RegistryClient;
  let secondDeployer: RegistryClient;

  before(async () => {
    first = await startTestServer();
    second = await startTestServer({ shareWith: first });
    firstAdmin = new RegistryClient(first.url, first.admin);
    const login = await createTestUser(first.db, 'deployer');
    await grantToUser(first.db, login.username, 'replica/**', ['pull']);
    secondDeployer = new RegistryClient(second.url, login);
  });
  after(async () => {
    await second.close();
    await first.close();
  });

  async function pushCertified(): Promise<{ repository: string; image: ManifestDocument }> {
    const repository = uniqueRepository('replica');
    const image = await firstAdmin.pushImage(repository, 'v1');
    await certify(first.db, repository, image.digest);
    return { repository, image };
  }

  test('certified image pulls on the second instance', async () => {
    const { repository } = await pushCertified();
    assert.equal((await secondDeployer.getBytes(`/v2/${repository}/manifests/v1`)).status, 200);
  });

  test('revocation on the first instance denies pulls on the second within 1 s', async () => {
    const { repository, image } = await pushCertified();
    assert.equal((await secondDeployer.getBytes(`/v2/${repository}/manifests/v1`)).status, 200);

    await revoke(first.db, repository, image.digest);
    const elapsed = await millisecondsUntilStatus(() => secondDeployer.http.get(`/v2/${repository}/manifests/v1`), 403);
    assert.notEqual(elapsed, null, `pulls on the second instance were still allowed ${PROPAGATION_LIMIT_MS} ms after the revocation`);
  });

  test('revocation denies layer pulls on the second instance within 1 s', async () => {
    const { repository, image } = await pushCertified();
    const layerPath = `/v2/${repository}/blobs/${blobsOf(image).layers[0]?.digest}`;
    assert.equal((await secondDeployer.getBytes(layerPath)).status, 200);

    await revoke(first.db, repository, image.digest);
    const elapsed = await millisecondsUntilStatus(() => secondDeployer.http.get(layerPath), 403);
    assert.notEqual(elapsed, null, `layer pulls were still allowed ${PROPAGATION_LIMIT_MS} ms after the revocation`);
  });

  test('rejection on the first instance denies pulls on the second within 1 s', async () => {
    const { repository, image } = await pushCertified();
    assert.equal((await secondDeployer.getBytes(`/v2/${repository}/manifests/v1`)).status, 200);

    await decide(first.db, repository, image.digest, 'security', 'reject');
    const elapsed = await millisecondsUntilStatus(() => secondDeployer.http.get(`/v2/${repository}/manifests/v1`), 403);
    assert.notEqual(elapsed, null, `pulls were still allowed ${PROPAGATION_LIMIT_MS} ms after the rejection`);
  });
});
