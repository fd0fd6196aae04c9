import type { Server } from 'node:http';
import type pino from 'pino';
import type { Config } from './config.js';
import { createApp } from './app.js';
import { PACKAGE_VERSION } from './version.js';
import { createDatabase, migrateToLatest, type Database } from './db/database.js';
import { startEmbeddedPostgres, type RunningEmbeddedPostgres } from './db/embedded-postgres.js';
import { lockDataDir } from './db/data-dir-lock.js';
import { openBlobStore } from './storage/from-config.js';
import { createAuditSink, maintainAuditPartitions, prepareAuditTrail, recordBootstrapAdmin, recordGatewayStart } from './audit/setup.js';
import { AuditWriter } from './audit/writer.js';
import { ensureBootstrapAdmin } from './auth/bootstrap.js';
import { createAuthServices } from './auth/setup.js';
import { JobQueue } from './jobs/queue.js';

/** How often the audit backlog is retried, month partitions are created ahead and dead scan runs are queued again, in milliseconds. */
const MAINTENANCE_INTERVAL_MS = 60_000;

/** Queues again the secret scans whose runs died, and logs what it did. */
async function recoverScans(app: { recoverScans(): Promise<string[]> }, logger: pino.Logger): Promise<void> {
  try {
    const digests = await app.recoverScans();
    if (digests.length > 0) logger.warn({ digests }, 'secret scans whose runs stopped were queued again');
  } catch (error) {
    logger.error({ err: error }, 'queueing abandoned secret scans again failed');
  }
}


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
  let maintenanceTimer: NodeJS.Timeout;
  let url: string;
  const auditWriter = new AuditWriter(db, logger, { lockTimeoutMs: config.audit.lockTimeoutMs, replica: config.audit.replica });
  try {
    await migrateToLatest(db, logger);
    const opened = await openBlobStore(config.storage, logger);
    closeStore = opened.close;
    await prepareAuditTrail(db, logger);
    await ensureBootstrapAdmin(db, config.auth.adminPassword, logger, process.stdout, (trx, username) => recordBootstrapAdmin(trx, config.audit, username));
    const events = createAuditSink(db, logger, config.audit, { writer: auditWriter });
    const auth = await createAuthServices(db, config.auth, events, logger);
    const lease = { leaseSeconds: config.scanLeaseSeconds, renewSeconds: Math.max(1, Math.floor(config.scanLeaseSeconds / 4)) };
    const app = createApp({ config, db, store: opened.store, logger, auth, events, jobs, scanSettings: { lease } });
    await jobs.start();

    server = await new Promise<Server>((resolve, reject) => {
      // Express 5 passes a listen failure (port in use, unknown address) to this callback.
      const listening = app.express.listen(config.port, config.host, (error?: Error) => (error ? reject(error) : resolve(listening)));
    });
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.port;
    url = config.publicUrl ?? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    try {
      await recordGatewayStart(db, logger, config.audit, { version: PACKAGE_VERSION, url });
    } catch (error) {
      server.close();
      throw error;
    }

    purgeTimer = setInterval(() => {
      app.uploads.purgeStale(config.uploads.sessionTtlSeconds).catch((error: unknown) => logger.error({ err: error }, 'purging stale upload sessions failed'));
    }, config.uploads.purgeIntervalSeconds * 1000);
    purgeTimer.unref();
    await recoverScans(app, logger);
    // Writes audit events kept after a failed write, creates month partitions ahead of time, and resumes scans whose runs died.
    maintenanceTimer = setInterval(() => {
      void auditWriter.drain().then(() => maintainAuditPartitions(db, logger));
      void recoverScans(app, logger);
    }, MAINTENANCE_INTERVAL_MS);
    maintenanceTimer.unref();
  } catch (error) {
    await stopDatabase().catch((stopError: unknown) => logger.warn({ err: stopError }, 'stopping the database after a failed start failed'));
    throw error;
  }

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
      jobs.beginStopping();
      clearInterval(purgeTimer);
      clearInterval(maintenanceTimer);
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
