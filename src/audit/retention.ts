import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import type { Knex } from 'knex';
import type pino from 'pino';
import { GENESIS_HASH, type AuditEvent } from './chain.js';
import { appendEvents, AUDIT_EVENT_COLUMNS, emptyInput, eventOfRow, type AuditEventRow } from './store.js';
import { checkEvent, type ChainProblem } from './verify.js';

/** First line of an archive file: what it contains and the chain hashes at its edges. */
export interface ArchiveHeader {
  format: typeof ARCHIVE_FORMAT;
  partition: string;
  rangeStart: string;
  rangeEnd: string;
  events: number;
  /** Number of the first event, or null for an empty partition. */
  firstSeq: number | null;
  lastSeq: number | null;
  /** Hash of the event before the first one: where the archive joins the chain. */
  prevHash: string | null;
  /** Hash of the last event: where the chain that remains must continue. */
  lastHash: string | null;
}

export const ARCHIVE_FORMAT = 'portcullis-audit-archive/1';

/** Result of archiving one partition. */
export interface ArchivedPartition {
  partition: string;
  file: string;
  fileSha256: string;
  events: number;
  firstSeq: number | null;
  lastSeq: number | null;
}

const PARTITION_NAME = /^audit_events_(\d{4})_(\d{2})$/;
const BATCH = 5000;

/** Thrown when retention cannot archive a partition without breaking the chain's continuity. */
export class RetentionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetentionError';
  }
}

function rangeOfPartition(name: string): { start: Date; end: Date } | null {
  const match = PARTITION_NAME.exec(name);
  if (!match) return null;
  const year = Number(match[1]);
  const month = Number(match[2]) - 1;
  return { start: new Date(Date.UTC(year, month, 1)), end: new Date(Date.UTC(year, month + 1, 1)) };
}

/** Month partitions of the audit table, oldest first. */
export async function listPartitions(db: Knex): Promise<Array<{ name: string; start: Date; end: Date }>> {
  const result = await db.raw<{ rows: Array<{ name: string }> }>(
    `select child.relname as name from pg_inherits
       join pg_class child on child.oid = pg_inherits.inhrelid
       join pg_class parent on parent.oid = pg_inherits.inhparent
      where parent.relname = 'audit_events'`,
  );
  return result.rows
    .flatMap((row) => {
      const range = rangeOfPartition(row.name);
      return range ? [{ name: row.name, ...range }] : [];
    })
    .sort((a, b) => a.start.getTime() - b.start.getTime());
}

function eventLine(event: AuditEvent): string {
  return `${JSON.stringify({ ...event, occurredAt: event.occurredAt.toISOString() })}\n`;
}

/** Writes a partition's events to `file` through a temporary file, flushed to disk; returns the file's sha256 and the header. */
async function exportPartition(db: Knex, partition: { name: string; start: Date; end: Date }, file: string): Promise<{ sha256: string; header: ArchiveHeader }> {
  const bounds: { first: number | null; last: number | null; count: string } | undefined = await db(partition.name).first(db.raw('min(seq) as first'), db.raw('max(seq) as last'), db.raw('count(*) as count'));
  const firstSeq = bounds?.first === null || bounds?.first === undefined ? null : Number(bounds.first);
  const lastSeq = bounds?.last === null || bounds?.last === undefined ? null : Number(bounds.last);
  let prevHash: string | null = null;
  if (firstSeq === 1) prevHash = GENESIS_HASH;
  else if (firstSeq !== null) prevHash = ((await db('audit_events').where({ seq: firstSeq }).first('prev_hash')) as { prev_hash: string }).prev_hash;
  let lastHash: string | null = null;
  if (lastSeq !== null) lastHash = ((await db('audit_events').where({ seq: lastSeq }).first('hash')) as { hash: string }).hash;
  const header: ArchiveHeader = {
    format: ARCHIVE_FORMAT,
    partition: partition.name,
    rangeStart: partition.start.toISOString(),
    rangeEnd: partition.end.toISOString(),
    events: Number(bounds?.count ?? 0),
    firstSeq,
    lastSeq,
    prevHash,
    lastHash,
  };

  const temporary = `${file}.partial`;
  const handle = await open(temporary, 'w');
  const hash = createHash('sha256');
  try {
    const write = async (text: string) => {
      hash.update(text);
      await handle.write(text);
    };
    await write(`${JSON.stringify(header)}\n`);
    let after = 0;
    for (;;) {
      const rows: AuditEventRow[] = await db(partition.name).select(...AUDIT_EVENT_COLUMNS).where('seq', '>', after).orderBy('seq').limit(BATCH);
      for (const row of rows) await write(eventLine(eventOfRow(row)));
      const last = rows[rows.length - 1];
      if (!last || rows.length < BATCH) break;
      after = Number(last.seq);
    }
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, file);
  return { sha256: hash.digest('hex'), header };
}

/** Throws unless every event older than the partition's first one is already archived. */
async function assertOldest(db: Knex, partition: string): Promise<void> {
  const result = await db.raw<{ rows: Array<{ seq: number | null }> }>(`select min(seq) as seq from ${partition}`);
  const firstSeq = result.rows[0]?.seq;
  if (firstSeq === null || firstSeq === undefined) return;
  const older: { seq: number } | undefined = await db('audit_events').where('seq', '<', firstSeq).first('seq');
  if (older) throw new RetentionError(`${partition} cannot be archived: event ${older.seq}, older than its first event ${firstSeq}, is still in another partition`);
}

/**
 * Archives and drops every month partition that ends on or before `before`,
 * oldest first. Each partition is written to `<directory>/<partition>.ndjson`
 * and flushed to disk: a header line with the chain hashes at its edges, then
 * one event per line. Then, in one transaction, the archive is recorded in
 * `audit_archives`, the partition is detached and dropped, and an
 * `audit.archive` event is appended. Only the oldest events may go, so a
 * partition with older events left elsewhere is refused.
 */
export async function archivePartitions(db: Knex, options: { before: Date; directory: string; actor: string; replica: string; logger: pino.Logger }): Promise<ArchivedPartition[]> {
  await mkdir(options.directory, { recursive: true });
  const archived: ArchivedPartition[] = [];
  for (const partition of await listPartitions(db)) {
    if (partition.end.getTime() > options.before.getTime()) break;
    const file = path.join(options.directory, `${partition.name}.ndjson`);
    await assertOldest(db, partition.name);
    options.logger.info({ partition: partition.name, file }, 'archiving audit partition');
    const { sha256, header } = await exportPartition(db, partition, file);

    await db.transaction(async (trx) => {
      await assertOldest(trx, partition.name);
      await trx('audit_archives').insert({
        partition_name: partition.name,
        range_start: partition.start,
        range_end: partition.end,
        first_seq: header.firstSeq,
        last_seq: header.lastSeq,
        prev_hash: header.prevHash,
        last_hash: header.lastHash,
        events: header.events,
        file_name: path.basename(file),
        file_sha256: sha256,
        archived_by: options.actor,
      });
      await trx.raw(`alter table audit_events detach partition ${partition.name}`);
      await trx.raw(`drop table ${partition.name}`);
      await appendEvents(trx, [
        {
          ...emptyInput('audit.archive', options.replica),
          actorSubject: options.actor,
          details: { partition: partition.name, events: header.events, firstSeq: header.firstSeq, lastSeq: header.lastSeq, lastHash: header.lastHash, file: path.basename(file), fileSha256: sha256 },
        },
      ]);
    });
    options.logger.info({ partition: partition.name, events: header.events, file }, 'audit partition archived and dropped');
    archived.push({ partition: partition.name, file, fileSha256: sha256, events: header.events, firstSeq: header.firstSeq, lastSeq: header.lastSeq });
  }
  return archived;
}

export interface ArchiveFileReport {
  ok: boolean;
  header: ArchiveHeader | null;
  checked: number;
  sha256: string;
  problem: ChainProblem | { seq: null; kind: 'format' | 'edge'; message: string } | null;
}

/**
 * Verifies an archive file on its own: recomputes each event's hashes from
 * the header's previous hash and checks that the chain ends at the header's
 * last hash. Compare `sha256` with `audit_archives.file_sha256`, and the
 * header's last hash with the previous hash of the first event that remains.
 */
export async function verifyArchiveFile(file: string): Promise<ArchiveFileReport> {
  const hash = createHash('sha256');
  const input = createReadStream(file);
  input.on('data', (chunk) => hash.update(chunk));
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  let header: ArchiveHeader | null = null;
  let checked = 0;
  let expectedSeq = 0;
  let prevHash = '';
  let problem: ArchiveFileReport['problem'] = null;

  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber += 1;
    if (problem || line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      problem = { seq: null, kind: 'format', message: `line ${lineNumber} is not valid JSON` };
      continue;
    }
    if (header === null) {
      const parsed = value as ArchiveHeader;
      if (parsed.format !== ARCHIVE_FORMAT) {
        problem = { seq: null, kind: 'format', message: `the file is not a ${ARCHIVE_FORMAT} archive` };
        continue;
      }
      header = parsed;
      expectedSeq = header.firstSeq ?? 0;
      prevHash = header.prevHash ?? '';
      continue;
    }
    const raw = value as AuditEvent & { occurredAt: string };
    const event: AuditEvent = { ...raw, occurredAt: new Date(raw.occurredAt) };
    try {
      problem = checkEvent(event, expectedSeq, prevHash);
    } catch {
      problem = { seq: null, kind: 'format', message: `line ${lineNumber} is not an audit event` };
    }
    if (problem) continue;
    checked += 1;
    expectedSeq += 1;
    prevHash = event.hash;
  }
  const sha256 = hash.digest('hex');
  if (!problem && header === null) problem = { seq: null, kind: 'format', message: 'the file is empty' };
  if (!problem && header !== null) {
    if (checked !== header.events) problem = { seq: null, kind: 'edge', message: `the header announces ${header.events} events, but the file contains ${checked}` };
    else if (header.lastSeq !== null && prevHash !== header.lastHash) problem = { seq: null, kind: 'edge', message: 'the last event does not end at the hash the header records' };
  }
  return { ok: problem === null, header, checked, sha256, problem };
}
