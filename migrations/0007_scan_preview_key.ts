import type { Knex } from 'knex';

/**
 * The key of the HMAC in secret-scan previews. Its one row is created by the
 * first scan (see src/scan/preview-key.ts) with random bytes from the
 * gateway, and every replica reads the same key.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table scan_preview_key (
      id smallint primary key check (id = 1),
      preview_key bytea not null check (length(preview_key) >= 32),
      created_at timestamptz not null default now()
    )
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table if exists scan_preview_key');
}
