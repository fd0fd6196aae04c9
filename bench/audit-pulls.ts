/**
 * Manifest pull throughput with the audit trail on and off: 64 connections
 * GET one certified manifest by digest with a bearer token, against a gateway
 * child process (bench/support/pull-server.ts). Runs off, on, off, on and
 * prints requests per second for each run and the ratio of the means.
 *
 * Usage: node --import tsx bench/audit-pulls.ts [seconds per run, default 15]
 * Database: a fresh database on TEST_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres); storage: a temporary directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import pino from 'pino';
import { ensurePartitions } from '../src/audit/store.js';
import { hashPassword } from '../src/auth/passwords.js';
import { createDatabase, migrateToLatest } from '../src/db/database.js';

const seconds = Number(process.argv[2] ?? 15);
const CONNECTIONS = 64;
const serverUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REPOSITORY = 'bench/app';
const LOW_COST = { N: 1024, r: 8, p: 1 };

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  await client.query(sql);
  await client.end();
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function startServer(mode: 'audit' | 'off', databaseUrl: string, storageDir: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/support/pull-server.ts', mode, databaseUrl, storageDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout?.on('data', (chunk: Buffer) => {
      const match = /ready (\d+)/.exec(chunk.toString());
      if (match) resolve({ child, url: `http://127.0.0.1:${match[1]}` });
    });
    child.once('exit', (code) => reject(new Error(`the bench server exited with ${code}`)));
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

const database = `portcullis_bench_${randomBytes(4).toString('hex')}`;
await adminQuery(`create database ${database}`);
const databaseUrl = new URL(serverUrl);
databaseUrl.pathname = `/${database}`;
const storageDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bench-'));
const db = createDatabase(databaseUrl.toString());

try {
  await migrateToLatest(db, pino({ level: 'silent' }));
  await ensurePartitions(db, new Date());
  const [adminRow] = await db('users').insert({ username: 'admin', password_hash: await hashPassword('bench-admin', LOW_COST) }).returning('id');
  const adminsGroup = await db('groups').where({ name: 'admins' }).first('id');
  await db('group_members').insert({ group_id: adminsGroup.id, user_id: adminRow.id });
  const [pullerRow] = await db('users').insert({ username: 'puller', password_hash: await hashPassword('bench-puller', LOW_COST) }).returning('id');
  await db('grants').insert({ user_id: pullerRow.id, pattern: 'bench/**', permissions: ['pull'] });

  // Push one image as the administrator.
  const setup = await startServer('off', databaseUrl.toString(), storageDir);
  const adminAuth = `Basic ${Buffer.from('admin:bench-admin').toString('base64')}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = randomBytes(4096);
  for (const blob of [config, layer]) {
    const response = await fetch(`${setup.url}/v2/${REPOSITORY}/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', headers: { Authorization: adminAuth, 'Content-Type': 'application/octet-stream' }, body: blob });
    if (response.status !== 201) throw new Error(`blob push failed: ${response.status}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  const put = await fetch(`${setup.url}/v2/${REPOSITORY}/manifests/v1`, { method: 'PUT', headers: { Authorization: adminAuth, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  if (put.status !== 201) throw new Error(`manifest push failed: ${put.status}`);
  const digest = sha256(manifest);
  const repository = await db('repositories').where({ name: REPOSITORY }).first('id');
  for (const role of ['it', 'security', 'qa']) await db('certification_decisions').insert({ repository_id: repository.id, digest, role, decision: 'approve', actor: `bench-${role}` });
  const tokenResponse = await fetch(`${setup.url}/token?service=portcullis&scope=repository:${REPOSITORY}:pull`, { headers: { Authorization: `Basic ${Buffer.from('puller:bench-puller').toString('base64')}` } });
  const { token } = (await tokenResponse.json()) as { token: string };
  const check = await fetch(`${setup.url}/v2/${REPOSITORY}/manifests/${digest}`, { headers: { Authorization: `Bearer ${token}` } });
  if (check.status !== 200) throw new Error(`the benchmark pull was rejected: ${check.status} ${await check.text()}`);
  await stopServer(setup.child);

  const results: Array<{ mode: 'audit' | 'off'; requestsPerSecond: number; p99: number; errors: number }> = [];
  for (const mode of ['off', 'audit', 'off', 'audit'] as const) {
    const server = await startServer(mode, databaseUrl.toString(), storageDir);
    const options = { url: `${server.url}/v2/${REPOSITORY}/manifests/${digest}`, connections: CONNECTIONS, headers: { Authorization: `Bearer ${token}`, Accept: 'application/vnd.oci.image.manifest.v1+json' } };
    await autocannon({ ...options, duration: 3 });
    const result = await autocannon({ ...options, duration: seconds });
    results.push({ mode, requestsPerSecond: result.requests.average, p99: result.latency.p99, errors: result.non2xx + result.errors });
    console.log(`audit ${mode.padEnd(5)}  ${result.requests.average.toFixed(0).padStart(6)} req/s  p99 ${result.latency.p99} ms  non-2xx+errors ${result.non2xx + result.errors}`);
    await stopServer(server.child);
  }
  const mean = (mode: 'audit' | 'off') => {
    const runs = results.filter((entry) => entry.mode === mode);
    return runs.reduce((sum, entry) => sum + entry.requestsPerSecond, 0) / runs.length;
  };
  const events = await db('audit_events').where({ action: 'manifest.pull' }).count<{ count: string }>('* as count').first();
  console.log(`mean off ${mean('off').toFixed(0)} req/s, mean audit ${mean('audit').toFixed(0)} req/s, ratio ${(mean('audit') / mean('off')).toFixed(3)} (requirement: at least 0.9)`);
  console.log(`manifest.pull audit events written: ${events?.count}`);
} finally {
  await db.destroy();
  await adminQuery(`drop database if exists ${database} with (force)`);
  await rm(storageDir, { recursive: true, force: true });
}
