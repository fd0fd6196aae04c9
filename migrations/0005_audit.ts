import type { Knex } from 'knex';

/**
 * The audit trail. `audit_events` is partitioned by month on `occurred_at`,
 * so retention drops whole partitions; a default partition takes any row
 * whose month has no partition yet. Each row carries the hash of its content,
 * the previous row's hash and its own chained hash. `audit_chain` holds the
 * end of the chain; writers lock its one row to number and link new events,
 * which serialises appends across replicas. `audit_archives` records each
 * partition that retention exported and dropped, with the hashes at its
 * boundaries, so the remaining chain can still be verified from its start.
 *
 * Triggers refuse UPDATE, DELETE and TRUNCATE on audit rows and archive
 * records, and any change to the chain head other than moving it forward.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table audit_events (
      seq bigint not null,
      occurred_at timestamptz not null,
      action text not null,
      actor_kind text not null check (actor_kind in ('user', 'robot', 'anonymous', 'system')),
      actor_subject text,
      token_id text,
      client_address text,
      user_agent text,
      request_id text,
      repository text,
      reference text,
      digest text,
      media_type text,
      bytes bigint,
      decision text check (decision in ('allowed', 'denied', 'would-deny')),
      reason text,
      policy text,
      certification_state text,
      replica text not null,
      details jsonb not null default '{}'::jsonb,
      content_hash text not null,
      prev_hash text not null,
      hash text not null,
      primary key (seq, occurred_at)
    ) partition by range (occurred_at)
  `);
  await knex.raw('create table audit_events_default partition of audit_events default');
  await knex.raw('create index audit_events_repository on audit_events (repository, seq desc)');
  await knex.raw('create index audit_events_repository_prefix on audit_events (repository text_pattern_ops)');
  await knex.raw('create index audit_events_digest on audit_events (digest, seq desc)');
  await knex.raw('create index audit_events_actor on audit_events (actor_subject, seq desc)');
  await knex.raw('create index audit_events_client on audit_events (client_address, seq desc)');
  await knex.raw('create index audit_events_time on audit_events (occurred_at desc, seq desc)');

  await knex.raw(`
    create table audit_chain (
      id smallint primary key check (id = 1),
      last_seq bigint not null,
      last_hash text not null,
      last_at timestamptz
    )
  `);
  // The hash before the first event: 64 zeros.
  await knex.raw(`insert into audit_chain (id, last_seq, last_hash, last_at) values (1, 0, repeat('0', 64), null)`);

  await knex.raw(`
    create table audit_archives (
      partition_name text primary key,
      range_start timestamptz not null,
      range_end timestamptz not null,
      first_seq bigint,
      last_seq bigint,
      prev_hash text,
      last_hash text,
      events bigint not null,
      file_name text not null,
      file_sha256 text not null,
      archived_by text not null,
      archived_at timestamptz not null default now()
    )
  `);

  await knex.raw(`
    create function audit_refuse_change() returns trigger language plpgsql as $$
    begin
      raise exception 'audit records are append-only: % on % is refused', tg_op, tg_table_name
        using errcode = 'insufficient_privilege';
    end
    $$
  `);
  await knex.raw(`
    create function audit_chain_forward_only() returns trigger language plpgsql as $$
    begin
      if tg_op <> 'UPDATE' or new.id <> old.id or new.last_seq < old.last_seq then
        raise exception 'the audit chain head only moves forward: % is refused', tg_op
          using errcode = 'insufficient_privilege';
      end if;
      return new;
    end
    $$
  `);
  await knex.raw('create trigger audit_events_append_only before update or delete on audit_events for each row execute function audit_refuse_change()');
  await knex.raw('create trigger audit_events_no_truncate before truncate on audit_events for each statement execute function audit_refuse_change()');
  await knex.raw('create trigger audit_events_default_no_truncate before truncate on audit_events_default for each statement execute function audit_refuse_change()');
  await knex.raw('create trigger audit_chain_forward before update or delete on audit_chain for each row execute function audit_chain_forward_only()');
  await knex.raw('create trigger audit_chain_no_truncate before truncate on audit_chain for each statement execute function audit_refuse_change()');
  await knex.raw('create trigger audit_archives_append_only before update or delete on audit_archives for each row execute function audit_refuse_change()');
  await knex.raw('create trigger audit_archives_no_truncate before truncate on audit_archives for each statement execute function audit_refuse_change()');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table if exists audit_archives');
  await knex.raw('drop table if exists audit_chain');
  await knex.raw('drop table if exists audit_events');
  await knex.raw('drop function if exists audit_chain_forward_only()');
  await knex.raw('drop function if exists audit_refuse_change()');
}
