import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type pino from 'pino';
import type { Config } from '../config.js';
import { createDatabase, migrateToLatest, type Database } from '../db/database.js';
import { lockDataDir } from '../db/data-dir-lock.js';
import { embeddedConnectionString, startEmbeddedPostgres, superuserPassword } from '../db/embedded-postgres.js';

/** Returns the port of the running embedded server from its postmaster.pid (fourth line), or null. */
async function runningServerPort(dataDir: string): Promise<number | null> {
  const lines = (await readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n');
  const port = Number(lines[3]);
  return Number.isInteger(port) && port > 0 ? port : null;
}

/**
 * Opens the database for one command, applies pending migrations, runs the
 * work and closes everything again. The database is DATABASE_URL, or the
 * embedded PostgreSQL under DATA_DIR.
 *
 * While a gateway holds the data directory's lock, the command connects to
 * that gateway's embedded server (port from its postmaster.pid) and never
 * starts or stops a server, because that would cut the gateway off from its
 * database. Otherwise the command takes the lock itself, so a gateway cannot
 * start on the directory meanwhile, and runs the embedded server for its own
 * length.
 */
export async function withCommandDatabase<T>(config: Config, logger: pino.Logger, work: (db: Database) => Promise<T>): Promise<T> {
  if (config.databaseUrl !== null) return runWith(config.databaseUrl, logger, work);

  let lock;
  try {
    lock = await lockDataDir(config.dataDir);
  } catch (error) {
    if (!/in use by another gateway/.test((error as Error).message)) throw error;
    const port = await runningServerPort(config.dataDir);
    if (port === null) throw new Error(`a gateway runs on DATA_DIR ${config.dataDir} but its embedded PostgreSQL is not running; stop the gateway or wait until it has started`, { cause: error });
    const password = await superuserPassword(config.dataDir, false);
    return runWith(embeddedConnectionString(port, password), logger, work);
  }

  try {
    const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPostgresPort, logger });
    try {
      return await runWith(embedded.connectionString, logger, work);
    } finally {
      await embedded.stop().catch((error: unknown) => logger.warn({ err: error }, 'stopping the embedded PostgreSQL failed'));
    }
  } finally {
    await lock.release();
  }
}

async function runWith<T>(connectionString: string, logger: pino.Logger, work: (db: Database) => Promise<T>): Promise<T> {
  const db = createDatabase(connectionString, { poolMax: 2 });
  try {
    await migrateToLatest(db, logger);
    return await work(db);
  } finally {
    await db.destroy().catch((error: unknown) => logger.warn({ err: error }, 'closing the database connections failed'));
  }
}
