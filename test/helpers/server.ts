import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createApp, type App } from '../../src/app.js';
import { openBlobStore } from '../../src/storage/from-config.js';
import type { Config } from '../../src/config.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { createDatabase, type Database } from '../../src/db/database.js';

export interface TestServer {
  /** Base URL, such as http://127.0.0.1:PORT. */
  url: string;
  /** host:port, for image references. */
  host: string;
  app: App;
  db: Database;
  store: BlobStore;
  /** The shared storage settings, for a second instance on the same database and bucket. */
  storage: Config['storage'];
  databaseUrl: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  storage?: 'filesystem' | 's3';
  /** Join an existing server's database and storage instead of creating new ones. */
  shareWith?: TestServer;
  logger?: pino.Logger;
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

  const opened = await openBlobStore(storage, logger);
  const app = createApp({ config: { publicUrl: null, trustedProxies: [] }, db, store: opened.store, logger });
  const server: Server = await new Promise((resolve) => {
    const listening = app.express.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;

  return {
    url: `http://${host}`,
    host,
    app,
    db,
    store: opened.store,
    storage,
    databaseUrl,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      opened.close();
      if (testDatabase) await testDatabase.drop();
      else await db.destroy();
      if (temporaryDirectory) await rm(temporaryDirectory, { recursive: true, force: true });
    },
  };
}
