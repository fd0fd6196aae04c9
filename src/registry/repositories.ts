import type { Knex } from 'knex';

/** Returns the id of a repository, or null when no repository has that name. */
export async function findRepositoryId(db: Knex, name: string): Promise<number | null> {
  const row = await db('repositories').where({ name }).first('id');
  return row ? Number(row.id) : null;
}

/** Returns the id of a repository, creating the row on first use. */
export async function ensureRepositoryId(db: Knex, name: string): Promise<number> {
  await db('repositories').insert({ name }).onConflict('name').ignore();
  const id = await findRepositoryId(db, name);
  if (id === null) throw new Error(`repository ${name} vanished right after it was created`);
  return id;
}
