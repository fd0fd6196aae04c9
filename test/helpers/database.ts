import { randomBytes } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { createDatabase, migrateToLatest, type Database } from '../../src/db/database.js';

/** Server the tests create their databases on; TEST_DATABASE_URL overrides the local default. */
export const TEST_SERVER_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  db: Database;
  drop(): Promise<void>;
}

function withDatabase(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_SERVER_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Creates an empty database with the current schema, unique to the caller. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `portcullis_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const url = withDatabase(TEST_SERVER_URL, name);
  const db = createDatabase(url, { poolMax: 10 });
  await migrateToLatest(db, pino({ level: 'silent' }));
  return {
    url,
    db,
    drop: async () => {
      await db.destroy();
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}
