import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { verifyChain } from '../../src/audit/verify.js';
import { fetchToken } from '../helpers/auth.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { RegistryClient, uniqueRepository } from '../helpers/registry-client.js';
import { killGatewayProcess, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const ADMIN = { username: 'admin', password: 'crash-test-admin-password' };
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function startGateway(databaseUrl: string, dataDir: string): Promise<GatewayProcess> {
  return startGatewayProcess(databaseUrl, dataDir, { PORTCULLIS_ADMIN_PASSWORD: ADMIN.password, REPLICA_ID: 'crash-test' });
}

/** GETs a manifest with a request id; resolves true only when the whole 200 response arrived. */
function pullOnce(agent: http.Agent, url: string, token: string, requestId: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get(url, { agent, headers: { Authorization: `Bearer ${token}`, 'X-Request-Id': requestId, Accept: 'application/vnd.oci.image.manifest.v1+json' } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode === 200 && response.complete));
      response.on('error', () => resolve(false));
    });
    request.on('error', () => resolve(false));
  });
}

describe('a gateway killed under pull load', () => {
  let database: TestDatabase;
  let dataDir: string;
  let gateway: GatewayProcess;

  before(async () => {
    database = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-crash-'));
    gateway = await startGateway(database.url, dataDir);
  });

  after(async () => {
    await killGatewayProcess(gateway);
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('loses no event of an acknowledged pull', async () => {
    const repository = uniqueRepository('crash/app');
    const image = await new RegistryClient(gateway.url, ADMIN).pushImage(repository, 'v1');
    const token = (await fetchToken(gateway.url, ADMIN, [`repository:${repository}:pull`])).token;
    const target = `${gateway.url}/v2/${repository}/manifests/${image.digest}`;

    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const acknowledged: string[] = [];
    let killed = false;
    let sent = 0;
    const worker = async (index: number) => {
      for (let round = 0; !killed || round === 0; round += 1) {
        const requestId = `crash-${index}-${round}`;
        sent += 1;
        if (await pullOnce(agent, target, token, requestId)) acknowledged.push(requestId);
        else if (killed) return;
      }
    };
    const workers = Array.from({ length: 32 }, (_, index) => worker(index));
    // Kill once the load is well under way, in the middle of group commits.
    while (acknowledged.length < 400) await new Promise((resolve) => setTimeout(resolve, 20));
    gateway.child.kill('SIGKILL');
    killed = true;
    await Promise.all(workers);
    agent.destroy();

    const rows: Array<{ request_id: string }> = await database.db('audit_events').whereIn('request_id', acknowledged).select('request_id');
    const recorded = new Set(rows.map((row) => row.request_id));
    const lost = acknowledged.filter((id) => !recorded.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${acknowledged.length} acknowledged pulls (of ${sent} sent) have no audit event`);
  });

  test('the first start records the administrator it created', async () => {
    const row: { actor_kind: string; details: { target: string } } | undefined = await database.db('audit_events').where({ action: 'account.change' }).first('actor_kind', 'details');
    assert.deepEqual([row?.actor_kind, row?.details.target], ['system', 'user:admin']);
  });

  test('the start is recorded with the audit settings and version', async () => {
    const row: { replica: string; details: { failOpenPulls: boolean; version: string } } | undefined = await database.db('audit_events').where({ action: 'gateway.start' }).first('replica', 'details');
    assert.deepEqual([row?.replica, row?.details.failOpenPulls, row?.details.version], ['crash-test', false, PACKAGE_VERSION]);
  });

  test('the trail verifies after the kill', async () => {
    assert.equal((await verifyChain(database.db)).problem, null);
  });
});
