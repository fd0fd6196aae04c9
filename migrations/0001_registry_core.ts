import type { Knex } from 'knex';

/**
 * Registry core schema: repositories, content-addressed blobs, the links that
 * make a blob visible in a repository, manifests with their references, tags
 * with their history, and upload sessions.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('repositories', (table) => {
    table.bigIncrements('id');
    table.text('name').notNullable().unique();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('blobs', (table) => {
    table.text('digest').primary();
    table.bigInteger('size').notNullable();
    table.text('storage_key').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('alter table blobs add constraint blobs_size_nonnegative check (size >= 0)');

  // A blob is visible in a repository only through a row here.
  await knex.schema.createTable('repository_blobs', (table) => {
    table.bigInteger('repository_id').notNullable().references('repositories.id').onDelete('CASCADE');
    table.text('digest').notNullable().references('blobs.digest').onDelete('RESTRICT');
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.primary(['repository_id', 'digest']);
  });
  await knex.raw('create index repository_blobs_digest_idx on repository_blobs (digest)');

  await knex.schema.createTable('manifests', (table) => {
    table.bigIncrements('id');
    table.bigInteger('repository_id').notNullable().references('repositories.id').onDelete('CASCADE');
    table.text('digest').notNullable();
    table.text('media_type').notNullable();
    table.binary('content').notNullable();
    table.bigInteger('size').notNullable();
    table.text('artifact_type');
    table.text('subject_digest');
    table.jsonb('annotations');
    table.integer('reference_count').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.unique(['repository_id', 'digest']);
  });
  await knex.raw('alter table manifests add constraint manifests_size_matches check (size = octet_length(content))');
  await knex.raw('create index manifests_subject_idx on manifests (repository_id, subject_digest) where subject_digest is not null');

  // Blobs a manifest references (config and layers). The foreign key to
  // repository_blobs keeps a referenced blob linked while the manifest exists.
  await knex.schema.createTable('manifest_blobs', (table) => {
    table.bigInteger('manifest_id').notNullable().references('manifests.id').onDelete('CASCADE');
    table.bigInteger('repository_id').notNullable();
    table.text('digest').notNullable();
    table.primary(['manifest_id', 'digest']);
    table.foreign(['repository_id', 'digest']).references(['repository_id', 'digest']).inTable('repository_blobs').onDelete('RESTRICT');
  });
  await knex.raw('create index manifest_blobs_link_idx on manifest_blobs (repository_id, digest)');

  // Child manifests of an image index or manifest list, in the same repository.
  await knex.schema.createTable('manifest_children', (table) => {
    table.bigInteger('parent_id').notNullable().references('manifests.id').onDelete('CASCADE');
    table.bigInteger('child_id').notNullable().references('manifests.id').onDelete('RESTRICT');
    table.primary(['parent_id', 'child_id']);
  });
  await knex.raw('create index manifest_children_child_idx on manifest_children (child_id)');

  // A manifest row commits only together with every reference row it
  // declares, so no manifest can exist without its blob and child links.
  await knex.raw(`
    create function manifests_check_references() returns trigger language plpgsql as $$
    declare
      actual integer;
      expected integer;
    begin
      select reference_count into expected from manifests where id = new.id;
      if not found then
        return null;
      end if;
      select (select count(*) from manifest_blobs where manifest_id = new.id)
           + (select count(*) from manifest_children where parent_id = new.id)
        into actual;
      if actual <> expected then
        raise exception 'manifest % has % reference rows, expected %', new.id, actual, expected
          using errcode = '23514';
      end if;
      return null;
    end $$`);
  await knex.raw(`
    create constraint trigger manifests_references_complete
      after insert on manifests deferrable initially deferred
      for each row execute function manifests_check_references()`);

  await knex.schema.createTable('tags', (table) => {
    table.bigInteger('repository_id').notNullable().references('repositories.id').onDelete('CASCADE');
    table.text('name').notNullable();
    table.bigInteger('manifest_id').notNullable().references('manifests.id').onDelete('CASCADE');
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.primary(['repository_id', 'name']);
  });
  await knex.raw('create index tags_manifest_idx on tags (manifest_id)');

  await knex.schema.createTable('tag_history', (table) => {
    table.bigIncrements('id');
    table.bigInteger('repository_id').notNullable().references('repositories.id').onDelete('CASCADE');
    table.text('tag').notNullable();
    table.text('old_digest');
    table.text('new_digest');
    table.timestamp('changed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create index tag_history_tag_idx on tag_history (repository_id, tag, id)');

  await knex.schema.createTable('upload_sessions', (table) => {
    table.uuid('id').primary();
    table.bigInteger('repository_id').notNullable().references('repositories.id').onDelete('CASCADE');
    table.bigInteger('size').notNullable().defaultTo(0);
    table.jsonb('hash_state').notNullable();
    table.jsonb('store_state').notNullable();
    table.uuid('lease_token');
    table.timestamp('lease_until', { useTz: true });
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create index upload_sessions_updated_idx on upload_sessions (updated_at)');

  // Staged storage objects whose removal failed or was deferred; a background
  // task retries them so no orphan stays behind.
  await knex.schema.createTable('storage_cleanup', (table) => {
    table.bigIncrements('id');
    table.jsonb('upload_state').notNullable();
    table.text('reason').notNullable();
    table.integer('attempts').notNullable().defaultTo(0);
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['storage_cleanup', 'upload_sessions', 'tag_history', 'tags', 'manifest_children', 'manifest_blobs', 'manifests', 'repository_blobs', 'blobs', 'repositories']) {
    await knex.schema.dropTableIfExists(table);
  }
  await knex.raw('drop function if exists manifests_check_references()');
}
