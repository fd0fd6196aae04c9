import type { Server } from 'node:http';
import type pino from 'pino';
import type { Config } from './config.js';
import { createApp } from './app.js';
import { createDatabase, migrateToLatest, type Database } from './db/database.js';
import { startEmbeddedPostgres, type RunningEmbeddedPostgres } from './db/embedded-postgres.js';
import { lockDataDir } from './db/data-dir-lock.js';
import { openBlobStore } from './storage/from-config.js';
import { createAuditSink, maintainAuditPartitions, startAuditTrail } from './audit/setup.js';
import { AuditWriter } from './audit/writer.js';
import { ensureBootstrapAdmin } from './auth/bootstrap.js';
import { createAuthServices } from './auth/setup.js';
import { JobQueue } from './jobs/queue.js';

/** How often the audit backlog is retried and month partitions are created ahead, in milliseconds. */
const AUDIT_MAINTENANCE_INTERVAL_MS = 60_000;

/** The gateway's version, recorded on its start event. */
const GATEWAY_VERSION = process.env.npm_package_version ?? 'unknown';

/** A started gateway and how to stop it. */
export interface RunningGateway {
  url: string;
  stop(): Promise<void>;
}

/** Opens the database named by DATABASE_URL, or starts the embedded PostgreSQL under the data directory. */
async function openDatabase(config: Config, logger: pino.Logger): Promise<{ db: Database; connectionString: string; embedded: RunningEmbeddedPostgres | null }> {
  if (config.databaseUrl !== null) return { db: createDatabase(config.databaseUrl), connectionString: config.databaseUrl, embedded: null };
  const lock = await lockDataDir(config.dataDir);
  try {
    const started = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      port: config.embeddedPostgresPort,
      logger,
      // Without its database the gateway can only fail requests, so it exits and lets its supervisor restart it.
      onUnexpectedExit: () => {
        logger.fatal('the embedded PostgreSQL exited unexpectedly; stopping the gateway');
        process.exit(1);
      },
    });
    const embedded: RunningEmbeddedPostgres = {
      connectionString: started.connectionString,
      stop: async () => {
        await started.stop();
        await lock.release();
      },
    };
    return { db: createDatabase(embedded.connectionString), connectionString: embedded.connectionString, embedded };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/**
 * Starts the gateway: database (external or embedded), migrations, blob
 * store, HTTP listener, background job workers and the stale upload purge.
 */
export async function startGateway(config: Config, logger: pino.Logger): Promise<RunningGateway> {
  const { db, connectionString, embedded } = await openDatabase(config, logger);
  const jobs = new JobQueue({ connectionString, logger, workers: true });
  const stopDatabase = async () => {
    await jobs.stop();
    await db.destroy();
    if (embedded) await embedded.stop();
  };

  let server: Server;
  let closeStore: () => void;
  let purgeTimer: NodeJS.Timeout;
  let auditTimer: NodeJS.Timeout;
  const auditWriter = new AuditWriter(db, logger);
  try {
    await migrateToLatest(db, logger);
    const opened = await openBlobStore(config.storage, logger);
    closeStore = opened.close;
    await ensureBootstrapAdmin(db, config.auth.adminPassword, logger);
    await startAuditTrail(db, logger, config.audit, { version: GATEWAY_VERSION });
    const events = createAuditSink(db, logger, config.audit, auditWriter);
    const auth = await createAuthServices(db, config.auth, events, logger);
    const app = createApp({ config, db, store: opened.store, logger, auth, events, jobs });
    await jobs.start();

    server = await new Promise<Server>((resolve, reject) => {
      // Express 5 passes a listen failure (port in use, unknown address) to this callback.
      const listening = app.express.listen(config.port, config.host, (error?: Error) => (error ? reject(error) : resolve(listening)));
    });

    purgeTimer = setInterval(() => {
      app.uploads.purgeStale(config.uploads.sessionTtlSeconds).catch((error: unknown) => logger.error({ err: error }, 'purging stale upload sessions failed'));
    }, config.uploads.purgeIntervalSeconds * 1000);
    purgeTimer.unref();
    // Writes events kept after a failed write, and creates month partitions ahead of time.
    auditTimer = setInterval(() => {
      void auditWriter.drain().then(() => maintainAuditPartitions(db, logger));
    }, AUDIT_MAINTENANCE_INTERVAL_MS);
    auditTimer.unref();
  } catch (error) {
    await stopDatabase().catch((stopError: unknown) => logger.warn({ err: stopError }, 'stopping the database after a failed start failed'));
    throw error;
  }

  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const url = config.publicUrl ?? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  logger.info(
    {
      url,
      dataDir: config.dataDir,
      storage: config.storage.driver === 's3' ? { driver: 's3', bucket: config.storage.bucket, endpoint: config.storage.endpoint ?? 'aws' } : { driver: 'filesystem', rootDir: config.storage.rootDir },
      database: embedded ? 'embedded' : 'external',
    },
    `Portcullis is listening on ${url}`,
  );

  return {
    url,
    stop: async () => {
      logger.info('stopping');
      clearInterval(purgeTimer);
      clearInterval(auditTimer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      // Running imports write to the store and the database, so the jobs stop first.
      await jobs.stop();
      await auditWriter.drain();
      closeStore();
      await stopDatabase();
      logger.info('stopped');
    },
  };
}
