import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import pino from 'pino';
import { startEmbeddedPostgres, type RunningEmbeddedPostgres } from '../../src/db/embedded-postgres.js';

const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));
const modulePath = path.join(repositoryRoot, 'src/db/embedded-postgres.ts');
const runsAsRoot = process.getuid?.() === 0;

interface LogRecord {
  level: number;
  msg: string;
  [field: string]: unknown;
}

const DEBUG = 20;
const WARN = 40;
const ERROR = 50;

/** Creates a pino logger at debug level that stores every record in `records`. */
function createRecordingLogger(): { logger: pino.Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        records.push(JSON.parse(line) as LogRecord);
      },
    },
  );
  return { logger, records };
}

/** Listens on a port that the system chooses on 127.0.0.1. */
async function listenOnFreePort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

async function findFreePort(): Promise<number> {
  const { server, port } = await listenOnFreePort();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Creates a data directory that the test removes afterwards, after it sends
 * SIGINT to any server still running on it.
 */
async function createDataDir(t: TestContext): Promise<string> {
  const parent = await fs.mkdtemp(path.join(tmpdir(), 'portcullis-embedded-pg-'));
  // mkdtemp creates the directory with mode 0700, but a root test runs the
  // server as the postgres system user, which needs to enter it.
  await fs.chmod(parent, 0o755);

  t.after(async () => {
    const pid = await readPostmasterPid(path.join(parent, 'data'));
    if (pid !== undefined && isProcessAlive(pid)) {
      process.kill(pid, 'SIGINT');
      await waitForExit(pid);
    }
    await fs.rm(parent, { recursive: true, force: true });
  });

  return path.join(parent, 'data');
}

async function readPostmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    const text = await fs.readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8');
    return Number.parseInt(text.split('\n')[0] ?? '', 10);
  } catch {
    return undefined;
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until process `pid` is gone and returns whether it went within 10 s. */
async function waitForExit(pid: number): Promise<boolean> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (!isProcessAlive(pid)) {
      return true;
    }
    await sleep(50);
  }
  return false;
}

/** Starts the server and stops it after the test, even when the test fails. */
async function start(t: TestContext, dataDir: string, port: number, logger: pino.Logger): Promise<RunningEmbeddedPostgres> {
  const running = await startEmbeddedPostgres({ dataDir, port, logger });
  t.after(() => running.stop());
  return running;
}

async function query(connectionString: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

test('startEmbeddedPostgres starts, queries and stops', async (t) => {
  const dataDir = await createDataDir(t);
  const port = await findFreePort();
  const { logger, records } = createRecordingLogger();

  const running = await start(t, dataDir, port, logger);
  const url = new URL(running.connectionString);
  assert.equal(url.hostname, '127.0.0.1');
  assert.equal(url.port, String(port));
  assert.equal(url.pathname, '/portcullis');

  const result = await query(running.connectionString, 'select 1 as one');
  assert.deepEqual(result.rows, [{ one: 1 }]);

  const listenAddresses = await query(running.connectionString, 'show listen_addresses');
  assert.deepEqual(listenAddresses.rows, [{ listen_addresses: '127.0.0.1' }]);

  await fs.access(path.join(dataDir, 'postgres', 'PG_VERSION'));

  await running.stop();
  await assert.rejects(query(running.connectionString, 'select 1'), { code: 'ECONNREFUSED' });

  const startRecord = records.find((record) => record.msg === 'Starting embedded PostgreSQL');
  assert.equal(startRecord?.clusterDir, path.join(await fs.realpath(dataDir), 'postgres'));
  assert.equal(startRecord?.port, port);
  assert.ok(records.some((record) => record.msg === 'Stopped embedded PostgreSQL'));
  assert.ok(records.some((record) => record.level === DEBUG && String(record.output).includes('ready to accept connections')));
});

test('startEmbeddedPostgres keeps data across restarts', async (t) => {
  const dataDir = await createDataDir(t);
  const port = await findFreePort();
  const { logger, records } = createRecordingLogger();

  const first = await start(t, dataDir, port, logger);
  await query(first.connectionString, "create table survivor (name text); insert into survivor values ('kept')");
  await first.stop();

  const second = await start(t, dataDir, port, logger);
  const result = await query(second.connectionString, 'select name from survivor');
  assert.deepEqual(result.rows, [{ name: 'kept' }]);

  const initialisations = records.filter((record) => record.msg === 'Initialising the embedded PostgreSQL cluster');
  assert.equal(initialisations.length, 1);
});

test('startEmbeddedPostgres replaces server of lost handle', async (t) => {
  const dataDir = await createDataDir(t);
  const port = await findFreePort();
  const { logger, records } = createRecordingLogger();

  // The first handle is never stopped, as if the gateway that held it had crashed.
  const lost = await start(t, dataDir, port, logger);
  await query(lost.connectionString, "create table survivor (name text); insert into survivor values ('kept')");
  const stalePid = await readPostmasterPid(dataDir);
  assert.ok(stalePid !== undefined);

  const running = await start(t, dataDir, port, logger);
  const result = await query(running.connectionString, 'select name from survivor');
  assert.deepEqual(result.rows, [{ name: 'kept' }]);

  assert.notEqual(await readPostmasterPid(dataDir), stalePid);
  assert.equal(await waitForExit(stalePid), true);
  assert.ok(records.some((record) => record.level === WARN && record.msg.startsWith('Stopping a PostgreSQL server left running')));
  assert.ok(records.some((record) => record.level === ERROR && record.msg === 'Embedded PostgreSQL exited unexpectedly'));

  // The lost handle's server has exited, so its stop returns without waiting.
  await lost.stop();
});

test('startEmbeddedPostgres replaces server of killed gateway', async (t) => {
  const dataDir = await createDataDir(t);
  const port = await findFreePort();
  const { logger, records } = createRecordingLogger();

  // A separate Node process plays the gateway, so SIGKILL leaves its server
  // orphaned with closed output pipes, as after kill -9 of a real gateway.
  const gatewayScript = `
    import pino from 'pino';
    import pg from 'pg';
    const { startEmbeddedPostgres } = await import(${JSON.stringify(pathToFileURL(modulePath).href)});
    const running = await startEmbeddedPostgres({ dataDir: process.argv[1], port: Number(process.argv[2]), logger: pino({ level: 'silent' }) });
    const client = new pg.Client({ connectionString: running.connectionString });
    await client.connect();
    await client.query("create table survivor (name text); insert into survivor values ('kept')");
    await client.end();
    process.stdout.write('ready\\n');
    setInterval(() => {}, 60_000);
  `;
  const gateway = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '--eval', gatewayScript, dataDir, String(port)],
    { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => gateway.kill('SIGKILL'));

  const firstLine = await once(createInterface({ input: gateway.stdout }), 'line');
  assert.deepEqual(firstLine, ['ready']);
  const stalePid = await readPostmasterPid(dataDir);
  assert.ok(stalePid !== undefined);

  gateway.kill('SIGKILL');
  await once(gateway, 'exit');
  assert.equal(isProcessAlive(stalePid), true);

  const running = await start(t, dataDir, port, logger);
  const result = await query(running.connectionString, 'select name from survivor');
  assert.deepEqual(result.rows, [{ name: 'kept' }]);

  assert.equal(await waitForExit(stalePid), true);
  assert.ok(records.some((record) => record.level === WARN && record.msg.startsWith('Stopping a PostgreSQL server left running')));
});

test('startEmbeddedPostgres recovers killed server', async (t) => {
  const dataDir = await createDataDir(t);
  const port = await findFreePort();
  const { logger, records } = createRecordingLogger();

  const crashed = await start(t, dataDir, port, logger);
  await query(crashed.connectionString, "create table survivor (name text); insert into survivor values ('kept')");
  const deadPid = await readPostmasterPid(dataDir);
  assert.ok(deadPid !== undefined);

  process.kill(deadPid, 'SIGKILL');
  assert.equal(await waitForExit(deadPid), true);
  assert.equal(await readPostmasterPid(dataDir), deadPid);

  const running = await start(t, dataDir, port, logger);
  const result = await query(running.connectionString, 'select name from survivor');
  assert.deepEqual(result.rows, [{ name: 'kept' }]);

  assert.ok(records.some((record) => record.msg.startsWith('Found postmaster.pid of a server that is no longer running')));
  await crashed.stop();
});

test('startEmbeddedPostgres rejects port in use', async (t) => {
  const dataDir = await createDataDir(t);
  const { server: blocker, port } = await listenOnFreePort();
  t.after(() => blocker.close());
  const { logger } = createRecordingLogger();

  const startPromise = startEmbeddedPostgres({ dataDir, port, logger });
  await assert.rejects(startPromise, (error: Error) => {
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}\\b`));
    assert.match(error.message, /EMBEDDED_PG_PORT/);
    return true;
  });
});

test('startEmbeddedPostgres rejects unenterable data directory', { skip: !runsAsRoot && 'runs only as root' }, async (t) => {
  // mkdtemp creates mode 0700, which the postgres system user cannot enter.
  const parent = await fs.mkdtemp(path.join(tmpdir(), 'portcullis-embedded-pg-'));
  t.after(() => fs.rm(parent, { recursive: true, force: true }));
  const { logger } = createRecordingLogger();

  const startPromise = startEmbeddedPostgres({ dataDir: path.join(parent, 'data'), port: await findFreePort(), logger });
  await assert.rejects(startPromise, /cannot enter/);
});
