import type { Knex } from 'knex';

/**
 * Identities and permissions: users, robot accounts, groups, memberships and
 * grants on repository patterns, the token signing keys generated when none
 * are configured, and the counters that rate-limit failed logins.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (table) => {
    table.bigIncrements('id');
    table.text('username').notNullable().unique();
    table.text('password_hash').notNullable();
    table.timestamp('disabled_at', { useTz: true });
    // Tokens issued before this moment are no longer accepted for renewal.
    table.timestamp('credentials_changed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('robots', (table) => {
    table.bigIncrements('id');
    table.text('name').notNullable().unique();
    table.text('secret_hash').notNullable();
    table.timestamp('expires_at', { useTz: true });
    table.timestamp('revoked_at', { useTz: true });
    table.text('created_by');
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('groups', (table) => {
    table.bigIncrements('id');
    table.text('name').notNullable().unique();
    table.text('description').notNullable().defaultTo('');
    table.boolean('built_in').notNullable().defaultTo(false);
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex('groups').insert(
    [
      ['admins', 'administrators: every permission on every repository, and user management'],
      ['it', 'IT reviewers: may certify images for the it role'],
      ['security', 'Security reviewers: may certify images for the security role'],
      ['qa', 'QA reviewers: may certify images for the qa role'],
      ['auditors', 'auditors: may read the audit trail'],
    ].map(([name, description]) => ({ name, description, built_in: true })),
  );

  // A member is a user or a robot, never both.
  await knex.schema.createTable('group_members', (table) => {
    table.bigIncrements('id');
    table.bigInteger('group_id').notNullable().references('groups.id').onDelete('CASCADE');
    table.bigInteger('user_id').references('users.id').onDelete('CASCADE');
    table.bigInteger('robot_id').references('robots.id').onDelete('CASCADE');
    table.unique(['group_id', 'user_id']);
    table.unique(['group_id', 'robot_id']);
  });
  await knex.raw('alter table group_members add constraint group_members_one_member check (num_nonnulls(user_id, robot_id) = 1)');

  // A grant belongs to exactly one user, robot or group.
  await knex.schema.createTable('grants', (table) => {
    table.bigIncrements('id');
    table.bigInteger('user_id').references('users.id').onDelete('CASCADE');
    table.bigInteger('robot_id').references('robots.id').onDelete('CASCADE');
    table.bigInteger('group_id').references('groups.id').onDelete('CASCADE');
    table.text('pattern').notNullable();
    table.specificType('permissions', 'text[]').notNullable();
    table.text('created_by');
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('alter table grants add constraint grants_one_subject check (num_nonnulls(user_id, robot_id, group_id) = 1)');
  await knex.raw('alter table grants add constraint grants_some_permission check (cardinality(permissions) > 0)');

  await knex.schema.createTable('signing_keys', (table) => {
    table.text('kid').primary();
    table.text('algorithm').notNullable();
    table.text('private_key_pem').notNullable();
    table.text('public_key_pem').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  await knex.schema.createTable('login_failures', (table) => {
    table.text('key').primary();
    table.timestamp('window_start', { useTz: true }).notNullable();
    table.integer('failures').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['login_failures', 'signing_keys', 'grants', 'group_members', 'groups', 'robots', 'users']) {
    await knex.schema.dropTableIfExists(table);
  }
}
