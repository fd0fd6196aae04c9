import type { Knex } from 'knex';

/**
 * Imports from upstream registries: the allowlist of upstream hosts with
 * their credentials, and one row per import request with its status. The
 * background jobs that run the imports live in the `pgboss` schema, which
 * pg-boss creates and migrates itself when the job queue starts.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('upstreams', (table) => {
    table.bigIncrements('id');
    // host or host:port, lowercase, exactly as image references name it.
    table.text('host').notNullable().unique();
    // TODO: encrypt the password at rest; it is stored as given because no key outside the database exists yet.
    table.text('username');
    table.text('password');
    table.boolean('insecure_http').notNullable().defaultTo(false);
    table.text('created_by').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('alter table upstreams add constraint upstreams_credentials_pair check ((username is null) = (password is null))');

  await knex.schema.createTable('imports', (table) => {
    table.uuid('id').primary();
    table.text('source').notNullable();
    table.text('upstream_host').notNullable();
    table.text('scheme').notNullable();
    table.text('source_repository').notNullable();
    // A tag or a digest.
    table.text('source_reference').notNullable();
    table.text('target_repository').notNullable();
    table.text('target_tag');
    table.text('status').notNullable().defaultTo('queued');
    table.text('message');
    // Digest and media type of the top-level manifest, known once it was fetched.
    table.text('digest');
    table.text('media_type');
    table.integer('manifests_copied').notNullable().defaultTo(0);
    table.integer('blobs_copied').notNullable().defaultTo(0);
    table.integer('blobs_skipped').notNullable().defaultTo(0);
    table.bigInteger('bytes_copied').notNullable().defaultTo(0);
    table.integer('attempts').notNullable().defaultTo(0);
    table.text('created_by').notNullable();
    table.text('created_by_kind').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('started_at', { useTz: true });
    table.timestamp('finished_at', { useTz: true });
  });
  await knex.raw(`alter table imports add constraint imports_status check (status in ('queued', 'running', 'succeeded', 'failed'))`);
  await knex.raw(`alter table imports add constraint imports_scheme check (scheme in ('https', 'http'))`);
  await knex.raw(`alter table imports add constraint imports_created_by_kind check (created_by_kind in ('user', 'robot'))`);
  await knex.raw('create index imports_created_at_idx on imports (created_at desc, id)');
  await knex.raw('create index imports_target_idx on imports (target_repository)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('imports');
  await knex.schema.dropTableIfExists('upstreams');
}
