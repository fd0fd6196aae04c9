import type { Knex } from 'knex';
import { chainHash, contentHashOf, GENESIS_HASH, type AuditEvent } from './chain.js';
import { AUDIT_EVENT_COLUMNS, eventOfRow, type AuditEventRow } from './store.js';

export interface VerifyRange {
  /** First time to check, inclusive. */
  from?: Date;
  /** Time to stop at, exclusive. */
  to?: Date;
}

/**
 * The first fault found. Its kind is one of:
 * - `missing`: an event number with no row;
 * - `content`: a row whose fields no longer match its content hash;
 * - `link`: a row whose previous hash is not the hash of the event before it,
 *   or a second row with the number of an event;
 * - `hash`: a row whose own hash is not derived from its previous and content hashes;
 * - `head`: the chain's recorded end disagrees with its last row, or a row
 *   lies beyond that end.
 */
export interface ChainProblem {
  seq: number;
  kind: 'missing' | 'content' | 'link' | 'hash' | 'head';
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  /** Events whose hashes were recomputed. */
  checked: number;
  firstSeq: number | null;
  lastSeq: number | null;
  problem: ChainProblem | null;
}

/** Rows read per query; the walk keeps one batch in memory at a time. */
const BATCH = 2000;

/** Checks one event against the hash it should follow; returns the fault, if any. */
export function checkEvent(event: AuditEvent, expectedSeq: number, expectedPrevHash: string): ChainProblem | null {
  // The primary key is (seq, occurred_at), so a row inserted by hand can repeat the number of an event already checked.
  if (event.seq < expectedSeq) {
    return { seq: event.seq, kind: 'link', message: `event ${event.seq} is stored more than once: a second row with its number was inserted outside the chain` };
  }
  if (event.seq !== expectedSeq) {
    const missing = event.seq - expectedSeq === 1 ? `event ${expectedSeq} is missing` : `events ${expectedSeq} to ${event.seq - 1} are missing`;
    return { seq: expectedSeq, kind: 'missing', message: `${missing}: the chain jumps from event ${expectedSeq - 1} to event ${event.seq}` };
  }
  if (contentHashOf(event) !== event.contentHash) {
    return { seq: event.seq, kind: 'content', message: `event ${event.seq} was changed after it was written: its fields no longer match its content hash` };
  }
  if (event.prevHash !== expectedPrevHash) {
    return { seq: event.seq, kind: 'link', message: `event ${event.seq} does not follow event ${event.seq - 1}: its previous hash differs from that event's hash` };
  }
  if (chainHash(event.prevHash, event.contentHash) !== event.hash) {
    return { seq: event.seq, kind: 'hash', message: `event ${event.seq} has a hash that its previous hash and content hash do not produce` };
  }
  return null;
}

/**
 * Returns whether the chain contains the `audit.archive` event of an archive
 * that ends with event `lastSeq` at `lastHash`. Retention appends that event
 * in the transaction that drops the partition, and `audit_archives` accepts
 * inserts, so a record without its event was not written by retention.
 */
async function archiveIsOnChain(db: Knex, lastSeq: number, lastHash: string): Promise<boolean> {
  const event = await db('audit_events')
    .where({ action: 'audit.archive' })
    .where('seq', '>', lastSeq)
    .whereRaw(`details->>'lastSeq' = ?`, [String(lastSeq)])
    .whereRaw(`details->>'lastHash' = ?`, [lastHash])
    .first('seq');
  return event !== undefined;
}

/** Returns where the checked range starts: its first event number and the hash that event must follow. */
async function anchorOf(db: Knex, range: VerifyRange): Promise<{ seq: number; prevHash: string } | ChainProblem | null> {
  const first = db('audit_events').min<{ seq: number | null }>('seq as seq');
  if (range.from) first.where('occurred_at', '>=', range.from);
  if (range.to) first.where('occurred_at', '<', range.to);
  const firstRow = await first.first();
  if (firstRow?.seq === null || firstRow?.seq === undefined) return null;
  const firstSeq = Number(firstRow.seq);
  if (firstSeq === 1) return { seq: 1, prevHash: GENESIS_HASH };

  const before: { hash: string } | undefined = await db('audit_events').where({ seq: firstSeq - 1 }).first('hash');
  if (before) return { seq: firstSeq, prevHash: before.hash };

  // The events before were archived and dropped by retention, or deleted.
  const archived: { last_hash: string } | undefined = await db('audit_archives').where({ last_seq: firstSeq - 1 }).first('last_hash');
  if (archived && (await archiveIsOnChain(db, firstSeq - 1, archived.last_hash))) return { seq: firstSeq, prevHash: archived.last_hash };
  if (range.from) {
    return { seq: firstSeq - 1, kind: 'missing', message: `event ${firstSeq - 1}, the one before the first event in the range, is missing and no archive ends with it` };
  }
  return { seq: 1, kind: 'missing', message: `events 1 to ${firstSeq - 1} are missing and no archive ends with event ${firstSeq - 1}` };
}

/**
 * Returns the lowest event number above the chain head, if any. An append
 * moves the head in the transaction that inserts its rows, so one statement's
 * snapshot never contains an appended row above the head.
 */
async function rowBeyondHead(db: Knex): Promise<{ seq: number; headSeq: number } | null> {
  const result = await db.raw<{ rows: Array<{ seq: string | null; head_seq: string }> }>(
    `select (select min(seq) from audit_events where seq > chain.last_seq) as seq, chain.last_seq as head_seq from audit_chain chain where chain.id = 1`,
  );
  const row = result.rows[0];
  if (!row || row.seq === null) return null;
  return { seq: Number(row.seq), headSeq: Number(row.head_seq) };
}

/**
 * Recomputes the hash chain over a time range, or over the whole trail, and
 * reports the first missing or altered event. Unless the range has an end,
 * it also checks that the chain's recorded end matches the last row, which
 * finds events deleted from the end, and that no row lies beyond that end.
 */
export async function verifyChain(db: Knex, range: VerifyRange = {}): Promise<VerifyReport> {
  const anchor = await anchorOf(db, range);
  if (anchor === null) {
    const head = range.from || range.to ? null : await db('audit_chain').where({ id: 1 }).first<{ last_seq: number } | undefined>('last_seq');
    if (head && Number(head.last_seq) > 0) {
      const problem: ChainProblem = { seq: 1, kind: 'missing', message: `the trail has no events, but its chain ends at event ${head.last_seq}` };
      return { ok: false, checked: 0, firstSeq: null, lastSeq: null, problem };
    }
    return { ok: true, checked: 0, firstSeq: null, lastSeq: null, problem: null };
  }
  if ('kind' in anchor) return { ok: false, checked: 0, firstSeq: null, lastSeq: null, problem: anchor };

  // The end is read before the walk, so events appended meanwhile are outside it.
  const head: { last_seq: number; last_hash: string } | undefined = range.to ? undefined : await db('audit_chain').where({ id: 1 }).first('last_seq', 'last_hash');
  const headSeq = head ? Number(head.last_seq) : null;

  let expectedSeq = anchor.seq;
  let prevHash = anchor.prevHash;
  let checked = 0;
  let lastSeq: number | null = null;
  for (;;) {
    const query = db('audit_events')
      .select(...AUDIT_EVENT_COLUMNS)
      .where('seq', '>=', expectedSeq)
      .orderBy('seq')
      .limit(BATCH);
    if (range.to) query.where('occurred_at', '<', range.to);
    if (headSeq !== null) query.where('seq', '<=', headSeq);
    const rows: AuditEventRow[] = await query;
    for (const row of rows) {
      const event = eventOfRow(row);
      const problem = checkEvent(event, expectedSeq, prevHash);
      if (problem) return { ok: false, checked, firstSeq: anchor.seq, lastSeq, problem };
      checked += 1;
      lastSeq = event.seq;
      prevHash = event.hash;
      expectedSeq = event.seq + 1;
    }
    if (rows.length < BATCH) break;
  }

  if (head && headSeq !== null) {
    if (headSeq >= expectedSeq) {
      const problem: ChainProblem = { seq: expectedSeq, kind: 'missing', message: `events ${expectedSeq} to ${headSeq} are missing: the chain ends at event ${headSeq}, the last row is event ${expectedSeq - 1}` };
      return { ok: false, checked, firstSeq: anchor.seq, lastSeq, problem };
    }
    if (headSeq === lastSeq && head.last_hash !== prevHash) {
      const problem: ChainProblem = { seq: lastSeq, kind: 'head', message: `event ${lastSeq} is the last event, but its hash differs from the hash the chain recorded for it` };
      return { ok: false, checked, firstSeq: anchor.seq, lastSeq, problem };
    }
    const beyond = await rowBeyondHead(db);
    if (beyond !== null) {
      const problem: ChainProblem = { seq: beyond.seq, kind: 'head', message: `event ${beyond.seq} is after the chain's recorded end, event ${beyond.headSeq}: it was inserted outside the chain` };
      return { ok: false, checked, firstSeq: anchor.seq, lastSeq, problem };
    }
  }
  return { ok: true, checked, firstSeq: anchor.seq, lastSeq, problem: null };
}
