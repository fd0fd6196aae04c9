import type { Knex } from 'knex';

/**
 * Secret scanning: one scan per manifest digest (content is global, so a
 * digest pushed to several repositories is scanned once), the findings of
 * its latest completed run, waivers of findings, and a log of every run that
 * claimed a scan. No table stores a secret: findings keep a redacted preview
 * and a fingerprint (a sha256) only.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('scans', (table) => {
    table.text('digest').primary();
    table.text('state').notNullable().defaultTo('queued');
    // Media type of the manifest, so the job knows how to read it without parsing first.
    table.text('media_type').notNullable();
    // Engine version of the latest finished run; null until a run finishes.
    table.text('engine_version');
    // The run that holds the scan while its state is `scanning`, and until when; a run renews the lease while it works.
    table.text('lease_owner');
    table.timestamp('lease_expires_at', { useTz: true });
    table.integer('attempts').notNullable().defaultTo(0);
    // Why the latest run failed, for state `failed`, or why the latest attempt failed while a retry is queued.
    table.text('error');
    // Per blob: whether it was scanned, skipped or unscannable, with the reason; replaced by every finished run.
    table.jsonb('blobs').notNullable().defaultTo('[]');
    table.timestamp('queued_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('started_at', { useTz: true });
    table.timestamp('finished_at', { useTz: true });
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`alter table scans add constraint scans_state check (state in ('queued', 'scanning', 'clean', 'findings', 'failed'))`);
  await knex.raw(`alter table scans add constraint scans_lease check ((state = 'scanning') = (lease_owner is not null and lease_expires_at is not null))`);

  await knex.schema.createTable('scan_findings', (table) => {
    table.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    table.text('digest').notNullable().references('scans.digest').onDelete('CASCADE');
    // A layer digest, or `config` for the image configuration.
    table.text('layer').notNullable();
    table.text('path');
    table.integer('line');
    table.text('detector').notNullable();
    table.text('severity').notNullable();
    table.text('preview').notNullable();
    // sha256 hex that the engine derives from what it found, stable across runs, so waivers survive a rescan.
    table.text('fingerprint').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.unique(['digest', 'fingerprint']);
  });
  await knex.raw(`alter table scan_findings add constraint scan_findings_severity check (severity in ('critical', 'high', 'medium', 'low'))`);

  await knex.schema.createTable('scan_waivers', (table) => {
    table.bigIncrements('id');
    table.uuid('finding_id').notNullable().references('scan_findings.id').onDelete('CASCADE');
    table.text('reason').notNullable();
    table.timestamp('expires_at', { useTz: true });
    table.text('actor').notNullable();
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('create index scan_waivers_finding_idx on scan_waivers (finding_id, created_at desc)');

  // One row per run that claimed a scan, kept after the scan finishes, so overlapping runs of a digest would show.
  await knex.schema.createTable('scan_runs', (table) => {
    table.bigIncrements('id');
    table.text('digest').notNullable().references('scans.digest').onDelete('CASCADE');
    table.text('job_id').notNullable();
    table.text('lease_owner').notNullable().unique();
    table.integer('attempt').notNullable();
    table.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.timestamp('finished_at', { useTz: true });
    // clean, findings, failed, retry (the run failed and the job is retried) or lost (another run took over the expired lease).
    table.text('outcome');
  });
  await knex.raw('create index scan_runs_digest_idx on scan_runs (digest, id)');
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['scan_runs', 'scan_waivers', 'scan_findings', 'scans']) {
    await knex.schema.dropTableIfExists(table);
  }
}
