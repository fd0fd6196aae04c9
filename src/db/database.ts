import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import type pino from 'pino';
import * as registryCore from '../../migrations/0001_registry_core.js';
import * as identity from '../../migrations/0002_identity.js';
import * as certification from '../../migrations/0003_certification.js';
import * as imports from '../../migrations/0004_imports.js';
import * as audit from '../../migrations/0005_audit.js';
import * as scans from '../../migrations/0006_scans.js';
import * as scanPreviewKey from '../../migrations/0007_scan_preview_key.js';

export type Database = Knex;

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** Migrations in the order they apply; each name is stable once released. */
const MIGRATIONS: ReadonlyArray<[string, Migration]> = [
  ['0001_registry_core', registryCore],
  ['0002_identity', identity],
  ['0003_certification', certification],
  ['0004_imports', imports],
  ['0005_audit', audit],
  ['0006_scans', scans],
  ['0007_scan_preview_key', scanPreviewKey],
];

/** Serves the migrations from this list, so knex never loads TypeScript files by path. */
const migrationSource: Knex.MigrationSource<[string, Migration]> = {
  getMigrations: async () => [...MIGRATIONS],
  getMigrationName: ([name]) => name,
  getMigration: async ([, migration]) => migration,
};

/** Arbitrary constant naming the advisory lock that serialises migrations across replicas. */
const MIGRATION_LOCK_ID = 0x506f7274;

// bigint columns hold ids and byte counts, all far below 2^53, so numbers are exact.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/** Opens a connection pool. Timestamps come back as Date, bigint columns as numbers. */
export function createDatabase(connectionString: string, options: { poolMax?: number } = {}): Database {
  return knexFactory({
    client: 'pg',
    connection: { connectionString, application_name: 'portcullis' },
    pool: { min: 0, max: options.poolMax ?? 20 },
    acquireConnectionTimeout: 30_000,
  });
}

/**
 * Applies pending migrations. A session-level advisory lock makes a second
 * replica that starts at the same moment wait, then find nothing to do.
 */
export async function migrateToLatest(db: Database, logger: pino.Logger): Promise<void> {
  const lockConnection = await db.client.acquireConnection();
  try {
    await lockConnection.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    const [batch, applied] = (await db.migrate.latest({ migrationSource })) as [number, string[]];
    if (applied.length > 0) logger.info({ batch, migrations: applied }, 'database migrations applied');
    else logger.debug('database schema is up to date');
  } finally {
    await lockConnection.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch((error: unknown) => {
      logger.warn({ err: error }, 'releasing the migration lock failed; it is released when the connection closes');
    });
    await db.client.releaseConnection(lockConnection);
  }
}

/** Reverts every migration; used by tests that need an empty schema. */
export async function rollbackAll(db: Database): Promise<void> {
  await db.migrate.rollback({ migrationSource }, true);
}
