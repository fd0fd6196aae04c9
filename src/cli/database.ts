import pg from 'pg';
import type pino from 'pino';
import type { Config } from '../config.js';
import { createDatabase, migrateToLatest, type Database } from '../db/database.js';
import { embeddedConnectionString, startEmbeddedPostgres } from '../db/embedded-postgres.js';

/** How long the probe for a running embedded server waits for a connection, in milliseconds. */
const PROBE_TIMEOUT_MS = 2_000;

async function acceptsConnections(connectionString: string): Promise<boolean> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Opens the database for one command, applies pending migrations, runs the
 * work and closes everything again. The database is DATABASE_URL, or the
 * embedded PostgreSQL under DATA_DIR. A running `serve` on the same data
 * directory keeps its embedded server, so the command connects to that server
 * instead of starting one, because starting one would stop the running one.
 */
export async function withCommandDatabase<T>(config: Config, logger: pino.Logger, work: (db: Database) => Promise<T>): Promise<T> {
  let connectionString = config.databaseUrl;
  let stopEmbedded: (() => Promise<void>) | null = null;
  if (connectionString === null) {
    const running = embeddedConnectionString(config.embeddedPostgresPort);
    if (await acceptsConnections(running)) {
      connectionString = running;
    } else {
      const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPostgresPort, logger });
      connectionString = embedded.connectionString;
      stopEmbedded = embedded.stop;
    }
  }

  const db = createDatabase(connectionString, { poolMax: 2 });
  try {
    await migrateToLatest(db, logger);
    return await work(db);
  } finally {
    await db.destroy().catch((error: unknown) => logger.warn({ err: error }, 'closing the database connections failed'));
    if (stopEmbedded) await stopEmbedded().catch((error: unknown) => logger.warn({ err: error }, 'stopping the embedded PostgreSQL failed'));
  }
}
