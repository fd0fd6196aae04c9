import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { GENESIS_HASH, linkEvents } from '../../src/audit/chain.js';
import { archivePartitions, RetentionError, verifyArchiveFile } from '../../src/audit/retention.js';
import { appendEvents, emptyInput, ensurePartitions, insertLinkedEvents } from '../../src/audit/store.js';
import { verifyChain } from '../../src/audit/verify.js';
import type { Database } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const silent = pino({ level: 'silent' });

/** Appends events with a chosen time, as if they had been written then. */
async function appendAt(db: Database, time: Date, count: number): Promise<void> {
  await db.transaction(async (trx) => {
    const head: { last_seq: number; last_hash: string } = await trx('audit_chain').where({ id: 1 }).forUpdate().first('last_seq', 'last_hash');
    const inputs = Array.from({ length: count }, (_, index) => ({ ...emptyInput('manifest.pull', 'r1'), repository: 'team/app', requestId: `${time.toISOString()}-${index}` }));
    await insertLinkedEvents(trx, linkEvents(inputs, Number(head.last_seq), head.last_hash, time));
  });
}

async function tableExists(db: Database, name: string): Promise<boolean> {
  return (await db.raw<{ rows: unknown[] }>('select 1 from pg_class where relname = ?', [name])).rows.length > 0;
}

describe('retention', () => {
  let database: TestDatabase;
  let db: Database;
  let directory: string;
  let archived: Awaited<ReturnType<typeof archivePartitions>>;

  before(async () => {
    database = await createTestDatabase();
    db = database.db;
    directory = await mkdtemp(path.join(os.tmpdir(), 'portcullis-archive-'));
    await ensurePartitions(db, new Date('2026-01-10T00:00:00Z'));
    await ensurePartitions(db, new Date());
    await appendAt(db, new Date('2026-01-10T08:00:00Z'), 30);
    await appendAt(db, new Date('2026-02-10T08:00:00Z'), 20);
    await db.transaction(async (trx) => {
      await appendEvents(trx, [emptyInput('gateway.start', 'r1')]);
    });
    archived = await archivePartitions(db, { before: new Date('2026-02-01T00:00:00Z'), directory, actor: 'cli:test', replica: 'r1', logger: silent });
  });

  after(async () => {
    await database.drop();
    await rm(directory, { recursive: true, force: true });
  });

  test('archives only partitions that end before the cutoff', () => {
    assert.deepEqual(archived.map((entry) => entry.partition), ['audit_events_2026_01']);
  });

  test('drops the archived partition', async () => {
    assert.equal(await tableExists(db, 'audit_events_2026_01'), false);
  });

  test('keeps later partitions', async () => {
    assert.equal(await tableExists(db, 'audit_events_2026_02'), true);
  });

  test('writes the archive file', async () => {
    assert.ok((await stat(archived[0]!.file)).size > 0);
  });

  test('records the archive with its boundary hashes', async () => {
    const row: { first_seq: number; last_seq: number; last_hash: string; events: number } = await db('audit_archives').where({ partition_name: 'audit_events_2026_01' }).first('*');
    const next: { prev_hash: string } = await db('audit_events').where({ seq: 31 }).first('prev_hash');
    assert.deepEqual([Number(row.first_seq), Number(row.last_seq), Number(row.events), row.last_hash], [1, 30, 30, next.prev_hash]);
  });

  test('the archive file verifies on its own', async () => {
    const report = await verifyArchiveFile(archived[0]!.file);
    assert.deepEqual([report.ok, report.checked], [true, 30]);
  });

  test('the archive file hash matches the recorded one', async () => {
    const report = await verifyArchiveFile(archived[0]!.file);
    assert.equal(report.sha256, archived[0]!.fileSha256);
  });

  test('the remaining chain verifies from the archive boundary', async () => {
    const report = await verifyChain(db);
    assert.deepEqual([report.ok, report.firstSeq], [true, 31]);
  });

  test('the archiving is itself an event', async () => {
    const row: { details: { partition: string } } | undefined = await db('audit_events').where({ action: 'audit.archive' }).first('details');
    assert.equal(row?.details.partition, 'audit_events_2026_01');
  });

  test('an edited line in an archive file is reported at its event', async () => {
    const copy = path.join(directory, 'edited.ndjson');
    const lines = (await readFile(archived[0]!.file, 'utf8')).split('\n');
    lines[5] = lines[5]!.replace('team/app', 'team/other');
    await writeFile(copy, lines.join('\n'));
    const report = await verifyArchiveFile(copy);
    assert.deepEqual([report.problem?.kind, report.problem?.seq], ['content', 5]);
  });

  test('a removed line in an archive file is reported as missing', async () => {
    const copy = path.join(directory, 'shortened.ndjson');
    const lines = (await readFile(archived[0]!.file, 'utf8')).split('\n');
    lines.splice(3, 1);
    await writeFile(copy, lines.join('\n'));
    const report = await verifyArchiveFile(copy);
    assert.deepEqual([report.problem?.kind, report.problem?.seq], ['missing', 3]);
  });

  test('verify rejects a forged archive record', async () => {
    const fresh = await createTestDatabase();
    try {
      await ensurePartitions(fresh.db, new Date('2026-01-10T00:00:00Z'));
      await ensurePartitions(fresh.db, new Date());
      await appendAt(fresh.db, new Date('2026-01-10T08:00:00Z'), 5);
      await appendAt(fresh.db, new Date('2026-02-10T08:00:00Z'), 3);
      const last: { hash: string } = await fresh.db('audit_events').where({ seq: 5 }).first('hash');
      await fresh.db.raw('alter table audit_events detach partition audit_events_2026_01');
      await fresh.db.raw('drop table audit_events_2026_01');
      await fresh.db('audit_archives').insert({
        partition_name: 'audit_events_2026_01',
        range_start: new Date('2026-01-01T00:00:00Z'),
        range_end: new Date('2026-02-01T00:00:00Z'),
        first_seq: 1,
        last_seq: 5,
        prev_hash: GENESIS_HASH,
        last_hash: last.hash,
        events: 5,
        file_name: 'audit_events_2026_01.ndjson',
        file_sha256: '0'.repeat(64),
        archived_by: 'mallory',
      });
      const report = await verifyChain(fresh.db);
      assert.equal(report.ok, false);
      assert.deepEqual([report.problem?.kind, report.problem?.seq], ['missing', 1]);
    } finally {
      await fresh.drop();
    }
  });

  test('a partition with older events elsewhere is refused', async () => {
    const fresh = await createTestDatabase();
    const freshDirectory = await mkdtemp(path.join(os.tmpdir(), 'portcullis-archive-'));
    try {
      // No partition covers 2025-06, so these events go to the default partition.
      await appendAt(fresh.db, new Date('2025-06-10T00:00:00Z'), 2);
      await ensurePartitions(fresh.db, new Date('2026-01-10T00:00:00Z'));
      await appendAt(fresh.db, new Date('2026-01-10T00:00:00Z'), 2);
      await assert.rejects(archivePartitions(fresh.db, { before: new Date('2026-02-01T00:00:00Z'), directory: freshDirectory, actor: 'cli:test', replica: 'r1', logger: silent }), RetentionError);
    } finally {
      await fresh.drop();
      await rm(freshDirectory, { recursive: true, force: true });
    }
  });
});
