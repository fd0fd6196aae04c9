import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createApp, type App } from '../../src/app.js';
import { openBlobStore } from '../../src/storage/from-config.js';
import { loadConfig, type AttachmentConfig, type AuthConfig, type Config } from '../../src/config.js';
import { createAuthServices } from '../../src/auth/setup.js';
import { logEventSink, type RegistryEventSink } from '../../src/audit/registry-events.js';
import { AuditEventSink } from '../../src/audit/audit-sink.js';
import { ensurePartitions } from '../../src/audit/store.js';
import { AuditWriter } from '../../src/audit/writer.js';
import { hashPassword } from '../../src/auth/passwords.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { createDatabase, type Database } from '../../src/db/database.js';
import { JobQueue } from '../../src/jobs/queue.js';
import type { ScanSettings } from '../../src/scan/setup.js';

export interface TestServer {
  /** Base URL, such as http://127.0.0.1:PORT. */
  url: string;
  /** host:port, for image references. */
  host: string;
  app: App;
  /** Background job queue of this server; it has workers only with the `jobs` option. */
  jobs: JobQueue;
  db: Database;
  store: BlobStore;
  /** Writes this server's audit events; null when the server runs without the audit trail. */
  auditWriter: AuditWriter | null;
  /** Name of this server on its audit events. */
  replica: string;
  /** The shared storage settings, for a second instance on the same database and bucket. */
  storage: Config['storage'];
  databaseUrl: string;
  /** The administrator every test server has, for Basic authentication. */
  admin: { username: string; password: string };
  /** `Basic …` header value of the administrator. */
  adminAuthorization: string;
  close(): Promise<void>;
}

/** Login of the administrator that startTestServer creates. */
export const TEST_ADMIN = { username: 'admin', password: 'test-admin-password' };

/**
 * scrypt cost for test accounts: far below the production default, so that a
 * Basic-authenticated request costs about a millisecond of hashing.
 */
export const TEST_SCRYPT_PARAMETERS = { N: 1024, r: 8, p: 1 };

/** Creates a user with the test scrypt cost and adds it to the groups; returns its login. */
export async function createTestUser(db: Database, username: string, groups: string[] = [], password = `${username}-password`): Promise<{ username: string; password: string }> {
  const [user] = await db('users').insert({ username, password_hash: await hashPassword(password, TEST_SCRYPT_PARAMETERS) }).returning('id');
  for (const group of groups) {
    const row = await db('groups').where({ name: group }).first('id');
    if (!row) throw new Error(`no group ${group}`);
    await db('group_members').insert({ group_id: row.id, user_id: user.id });
  }
  return { username, password };
}

/** Creates a robot with the test scrypt cost and the given grants; returns its login (`robot$<name>`). */
export async function createTestRobot(db: Database, name: string, grants: Array<{ pattern: string; permissions: string[] }>, secret = `${name}-secret`): Promise<{ username: string; password: string }> {
  const [robot] = await db('robots').insert({ name, secret_hash: await hashPassword(secret, TEST_SCRYPT_PARAMETERS) }).returning('id');
  for (const grant of grants) await db('grants').insert({ robot_id: robot.id, pattern: grant.pattern, permissions: grant.permissions });
  return { username: `robot$${name}`, password: secret };
}

/** Adds a grant to a user. */
export async function grantToUser(db: Database, username: string, pattern: string, permissions: string[]): Promise<void> {
  const user = await db('users').where({ username }).first('id');
  if (!user) throw new Error(`no user ${username}`);
  await db('grants').insert({ user_id: user.id, pattern, permissions });
}

/** Returns the value of a Basic Authorization header. */
export function basicAuthorization(login: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${login.username}:${login.password}`).toString('base64')}`;
}

export interface TestServerOptions {
  storage?: 'filesystem' | 's3';
  /** Join an existing server's database and storage instead of creating new ones. */
  shareWith?: TestServer;
  logger?: pino.Logger;
  /** Authentication settings that differ from the defaults. */
  auth?: Partial<AuthConfig>;
  /** Receives every event after the audit trail has written it. */
  events?: RegistryEventSink;
  /**
   * Audit trail settings: false runs the server without the audit trail, as
   * benchmarks do for comparison. By default events are written to the trail.
   */
  audit?: false | { failOpenPulls?: boolean; replica?: string; lockTimeoutMs?: number };
  /** Addresses whose X-Forwarded-For headers are trusted. */
  trustedProxies?: string[];
  /** Attachment settings that differ from the defaults. */
  attachments?: Partial<AttachmentConfig>;
  /** BLOCKED_REGISTRIES entries in place of the default list. */
  blockedRegistries?: string[];
  /**
   * Runs background job workers, such as imports. Without it the server only
   * queues jobs (pg-boss starts on the first one), so another server with
   * workers on the same database can run them.
   */
  jobs?: boolean;
  /** Scan job and lease settings in place of the defaults, such as short retry delays. */
  scanSettings?: ScanSettings;
}

/** Returns S3 settings from the environment, or null when S3_ENDPOINT is unset. */
export function s3SettingsFromEnvironment(bucket: string): Config['storage'] | null {
  const endpoint = process.env.S3_ENDPOINT;
  if (!endpoint) return null;
  return {
    driver: 's3',
    endpoint,
    region: process.env.S3_REGION ?? 'us-east-1',
    bucket,
    accessKeyId: process.env.S3_ACCESS_KEY_ID,
    secretAccessKey: process.env.S3_SECRET_ACCESS_KEY,
    forcePathStyle: (process.env.S3_FORCE_PATH_STYLE ?? 'true') !== 'false',
  };
}

/** Why S3 tests are skipped on this machine, or false when they can run. */
export const s3Skip: string | false = process.env.S3_ENDPOINT ? false : 'S3_ENDPOINT is not set (start Ceph RGW with scripts/ceph-rgw.sh start)';

/**
 * Starts the gateway on 127.0.0.1 with a random port, its own database and
 * its own storage (a temporary directory or a fresh bucket).
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const logger = options.logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  let testDatabase: TestDatabase | null = null;
  let temporaryDirectory: string | null = null;
  let storage: Config['storage'];
  let databaseUrl: string;
  let db: Database;

  if (options.shareWith) {
    storage = options.shareWith.storage;
    databaseUrl = options.shareWith.databaseUrl;
    db = createDatabase(databaseUrl, { poolMax: 10 });
  } else {
    testDatabase = await createTestDatabase();
    databaseUrl = testDatabase.url;
    db = testDatabase.db;
    if (options.storage === 's3') {
      const settings = s3SettingsFromEnvironment(`portcullis-test-${randomBytes(5).toString('hex')}`);
      if (!settings) throw new Error('S3_ENDPOINT is not set');
      storage = settings;
    } else {
      temporaryDirectory = await mkdtemp(path.join(os.tmpdir(), 'portcullis-test-'));
      storage = { driver: 'filesystem', rootDir: temporaryDirectory };
    }
  }

  if (!options.shareWith) await createTestUser(db, TEST_ADMIN.username, ['admins'], TEST_ADMIN.password);
  const opened = await openBlobStore(storage, logger);
  if (!options.shareWith) await ensurePartitions(db, new Date());
  const replica = (options.audit !== false ? options.audit?.replica : undefined) ?? `test-${randomBytes(3).toString('hex')}`;
  const auditWriter = options.audit === false ? null : new AuditWriter(db, logger, { replica, ...(options.audit?.lockTimeoutMs !== undefined ? { lockTimeoutMs: options.audit.lockTimeoutMs } : {}) });
  const events = auditWriter === null ? (options.events ?? logEventSink) : new AuditEventSink(auditWriter, { replica, failOpenPulls: (options.audit !== false && options.audit?.failOpenPulls) === true }, options.events ?? logEventSink);
  const auth = await createAuthServices(db, { ...loadConfig({}).auth, ...options.auth }, events, logger);
  const defaults = loadConfig({});
  const config = {
    publicUrl: null,
    trustedProxies: options.trustedProxies ?? [],
    attachments: { ...defaults.attachments, ...options.attachments },
    blockedRegistries: options.blockedRegistries ?? defaults.blockedRegistries,
  };
  const jobs = new JobQueue({ connectionString: databaseUrl, logger, workers: options.jobs === true, pollingIntervalSeconds: 0.5 });
  const app = createApp({ config, db, store: opened.store, logger, auth, events, jobs, ...(options.scanSettings ? { scanSettings: options.scanSettings } : {}) });
  if (options.jobs === true) await jobs.start();
  const server: Server = await new Promise((resolve) => {
    const listening = app.express.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;

  return {
    url: `http://${host}`,
    host,
    app,
    jobs,
    db,
    store: opened.store,
    auditWriter,
    replica,
    storage,
    databaseUrl,
    admin: TEST_ADMIN,
    adminAuthorization: basicAuthorization(TEST_ADMIN),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await jobs.stop();
      await auditWriter?.drain();
      opened.close();
      if (testDatabase) await testDatabase.drop();
      else await db.destroy();
      if (temporaryDirectory) await rm(temporaryDirectory, { recursive: true, force: true });
    },
  };
}
