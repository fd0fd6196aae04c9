import type { Knex } from 'knex';

/**
 * Certification: policies that say which roles must approve images of the
 * repositories they match, every decision and revocation on a manifest
 * digest, and the channel that tells replicas about changes.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('policies', (table) => {
    table.bigIncrements('id');
    table.text('name').notNullable().unique();
    // The most specific matching pattern wins; the policy named "default" has the pattern "**".
    table.text('pattern').notNullable().unique();
    table.specificType('required_roles', 'text[]').notNullable();
    table.integer('validity_seconds');
    table.specificType('uncertified_groups', 'text[]').notNullable().defaultTo('{}');
    table.text('mode').notNullable().defaultTo('enforce');
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`alter table policies add constraint policies_mode check (mode in ('enforce', 'dry-run'))`);
  await knex.raw(`alter table policies add constraint policies_some_role check (cardinality(required_roles) > 0)`);
  await knex.raw(`alter table policies add constraint policies_validity_positive check (validity_seconds is null or validity_seconds > 0)`);
  await knex('policies').insert({ name: 'default', pattern: '**', required_roles: ['it', 'security', 'qa'], mode: 'enforce' });

  await knex.schema.createTable('certification_decisions', (table) => {
    table.bigIncrements('id');
    table.bigInteger('repository_id').notNullable().references('repositories.id').onDelete('CASCADE');
    table.text('digest').notNullable();
    table.text('role').notNullable();
    table.text('decision').notNullable();
    table.text('comment').notNullable().defaultTo('');
    table.jsonb('evidence').notNullable().defaultTo('{}');
    table.text('actor').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`alter table certification_decisions add constraint certification_decisions_decision check (decision in ('approve', 'reject'))`);
  await knex.raw('create index certification_decisions_digest_idx on certification_decisions (repository_id, digest, id)');

  await knex.schema.createTable('certification_revocations', (table) => {
    table.bigIncrements('id');
    table.bigInteger('repository_id').notNullable().references('repositories.id').onDelete('CASCADE');
    table.text('digest').notNullable();
    table.text('reason').notNullable();
    table.text('actor').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create index certification_revocations_digest_idx on certification_revocations (repository_id, digest, id)');
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['certification_revocations', 'certification_decisions', 'policies']) {
    await knex.schema.dropTableIfExists(table);
  }
}
