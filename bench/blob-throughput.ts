/**
 * Pushes and pulls one large blob through a gateway child process and prints
 * push and pull throughput and the gateway's peak RSS (VmHWM from
 * /proc/<pid>/status, Linux only).
 *
 * Usage: node --import tsx bench/blob-throughput.ts [size in MiB, default 1024]
 * Storage: S3 when S3_ENDPOINT is set (eval "$(scripts/ceph-rgw.sh env)"),
 * otherwise the filesystem store. Database: a fresh database on
 * TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import pg from 'pg';

const MIB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 1024);
const totalBytes = sizeMiB * MIB;
const serverUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const block = randomBytes(MIB);

/** Yields `total` bytes in 1 MiB chunks, each the random block stamped with its index, so generation costs little CPU. */
function* generateBytes(total: number): Generator<Buffer> {
  for (let sent = 0; sent < total; sent += MIB) {
    const chunk = Buffer.from(block);
    chunk.writeUInt32BE(sent / MIB, 0);
    yield chunk.subarray(0, Math.min(MIB, total - sent));
  }
}

async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  await client.query(sql);
  await client.end();
}

const database = `portcullis_bench_${randomBytes(4).toString('hex')}`;
await admin(`create database ${database}`);
const databaseUrl = new URL(serverUrl);
databaseUrl.pathname = `/${database}`;
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bench-'));
const port = 20000 + Math.floor(Math.random() * 20000);
const usesS3 = Boolean(process.env.S3_ENDPOINT);
const ADMIN_PASSWORD = randomBytes(18).toString('base64url');

const gateway = spawn(process.execPath, ['bin/portcullis.js', 'serve'], {
  env: {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl.toString(),
    LOG_LEVEL: 'warn',
    PORTCULLIS_ADMIN_PASSWORD: ADMIN_PASSWORD,
    ...(usesS3 ? { STORAGE_DRIVER: 's3', S3_BUCKET: `portcullis-bench-${randomBytes(4).toString('hex')}` } : { STORAGE_DRIVER: 'filesystem' }),
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});

const base = `http://127.0.0.1:${port}`;
// The administrator holds pull-uncertified, so it may read back a blob that no certified manifest references.
const authorization = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
try {
  for (let attempt = 0; ; attempt += 1) {
    const ready = await fetch(`${base}/healthz`).then((response) => response.ok).catch(() => false);
    if (ready) break;
    if (attempt > 300) throw new Error('gateway did not start within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const idleRss = await peakRssMiB(gateway.pid as number);

  const hash = createHash('sha256');
  for (const chunk of generateBytes(totalBytes)) hash.update(chunk);
  const digest = `sha256:${hash.digest('hex')}`;

  const started = await fetch(`${base}/v2/bench/large/blobs/uploads/`, { method: 'POST', headers: { authorization } });
  const location = started.headers.get('location');
  if (started.status !== 202 || !location) throw new Error(`upload start failed with ${started.status}`);

  const pushStart = performance.now();
  const patch = await fetch(location, {
    method: 'PATCH',
    body: Readable.toWeb(Readable.from(generateBytes(totalBytes))) as ReadableStream,
    headers: { 'content-type': 'application/octet-stream', authorization },
    duplex: 'half',
  } as RequestInit);
  if (patch.status !== 202) throw new Error(`PATCH failed with ${patch.status}: ${await patch.text()}`);
  const finish = await fetch(`${location}?digest=${digest}`, { method: 'PUT', headers: { authorization } });
  if (finish.status !== 201) throw new Error(`PUT failed with ${finish.status}: ${await finish.text()}`);
  const pushSeconds = (performance.now() - pushStart) / 1000;

  const pullStart = performance.now();
  const pulled = await fetch(`${base}/v2/bench/large/blobs/${digest}`, { headers: { authorization } });
  const pullHash = createHash('sha256');
  let pulledBytes = 0;
  for await (const chunk of pulled.body as unknown as AsyncIterable<Uint8Array>) {
    pullHash.update(chunk);
    pulledBytes += chunk.length;
  }
  const pullSeconds = (performance.now() - pullStart) / 1000;
  if (`sha256:${pullHash.digest('hex')}` !== digest || pulledBytes !== totalBytes) throw new Error('pulled bytes differ from pushed bytes');

  const peakRss = await peakRssMiB(gateway.pid as number);
  console.log(`storage: ${usesS3 ? `s3 (${process.env.S3_ENDPOINT})` : 'filesystem'}`);
  console.log(`blob: ${sizeMiB} MiB, one PATCH then PUT ?digest=`);
  console.log(`push: ${pushSeconds.toFixed(1)} s, ${(sizeMiB / pushSeconds).toFixed(0)} MiB/s`);
  console.log(`pull: ${pullSeconds.toFixed(1)} s, ${(sizeMiB / pullSeconds).toFixed(0)} MiB/s`);
  console.log(`gateway RSS: ${idleRss.toFixed(0)} MiB after start, ${peakRss.toFixed(0)} MiB peak`);
} finally {
  gateway.kill('SIGTERM');
  await new Promise((resolve) => gateway.once('exit', resolve));
  await rm(dataDir, { recursive: true, force: true });
  await admin(`drop database if exists ${database} with (force)`);
}
