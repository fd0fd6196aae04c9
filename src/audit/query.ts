import type { Knex } from 'knex';
import type { AuditDecision, AuditEvent } from './chain.js';
import { AUDIT_EVENT_COLUMNS, eventOfRow, type AuditEventRow } from './store.js';

/** Page size of an event query when the caller names none. */
export const DEFAULT_QUERY_LIMIT = 100;

/** Largest page of an event query. */
export const MAX_QUERY_LIMIT = 1000;

/** Rows that an export reads per query, so it keeps one batch in memory at a time. */
export const EXPORT_BATCH_SIZE = 1000;

/** Conditions an event must meet; every condition given must hold. */
export interface AuditFilter {
  /** Exact repository name. */
  repository?: string;
  /** Start of the repository name, such as `team-a/`; `%` and `_` in it match only themselves. */
  repositoryPrefix?: string;
  digest?: string;
  /** The tag of the event (the `reference` column). */
  tag?: string;
  /** The subject of the user, robot or system component that acted. */
  actor?: string;
  /** Any of these actions. */
  actions?: readonly string[];
  decision?: AuditDecision;
  clientAddress?: string;
  /** Earliest time, inclusive. */
  from?: Date;
  /** Time to stop at, exclusive. */
  to?: Date;
}

/** A page request: the filter, the page size and where the previous page ended. */
export interface AuditQuery extends AuditFilter {
  /** Events per page, 1 to MAX_QUERY_LIMIT; DEFAULT_QUERY_LIMIT when unset. */
  limit?: number;
  /** The `nextCursor` of the previous page; the first page when unset or null. */
  cursor?: string | null;
}

/** One page of events, newest first. */
export interface AuditPage {
  events: AuditEvent[];
  /** Pass as `cursor` to get the next, older page; null on the last page. */
  nextCursor: string | null;
}

/** A filter or page request that cannot be run; `field` names the offending parameter. */
export class InvalidAuditQueryError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
    this.name = 'InvalidAuditQueryError';
  }
}

/**
 * Encodes the position after an event as an opaque cursor: base64url of a
 * JSON object. The next page contains the events with a lower sequence number,
 * so events appended meanwhile, which get higher numbers, never shift it.
 */
export function encodeCursor(seq: number): string {
  return Buffer.from(JSON.stringify({ before: seq })).toString('base64url');
}

/** Returns the sequence number a cursor encodes; throws InvalidAuditQueryError for anything encodeCursor did not produce. */
export function decodeCursor(text: string): number {
  const invalid = new InvalidAuditQueryError('cursor', 'invalid cursor: pass the nextCursor of the previous page unchanged');
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) throw invalid;

  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw invalid;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid;
  const keys = Object.keys(value);
  const before = (value as { before?: unknown }).before;
  if (keys.length !== 1 || typeof before !== 'number' || !Number.isSafeInteger(before) || before < 1) throw invalid;
  return before;
}

/** Escapes `\`, `%` and `_` so that LIKE matches them literally, with `\` as the escape character. */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (character) => `\\${character}`);
}

function checkFilter(filter: AuditFilter): void {
  if (filter.repositoryPrefix === '') throw new InvalidAuditQueryError('repositoryPrefix', 'must not be empty; leave it out to match every repository');
  if (filter.actions !== undefined && filter.actions.length === 0) throw new InvalidAuditQueryError('action', 'must name at least one action');
  if (filter.from && filter.to && filter.from >= filter.to) throw new InvalidAuditQueryError('from', 'must be earlier than to');
}

/**
 * Returns the sequence numbers of the first and last event in [from, to), or
 * null when the range contains no event. Sequence numbers and times grow
 * together, because each append takes a time no earlier than the chain's last
 * one. So the events of a time range are one run of sequence numbers. Bounding a query by them lets
 * PostgreSQL read the (repository, seq), (digest, seq), … indexes over just
 * that run instead of every newer event of the repository or digest.
 */
async function seqRangeOf(db: Knex, from: Date | undefined, to: Date | undefined): Promise<{ first: number; last: number } | null> {
  const firstQuery = db('audit_events').select('seq').orderBy([{ column: 'occurred_at', order: 'asc' }, { column: 'seq', order: 'asc' }]).first();
  const lastQuery = db('audit_events').select('seq').orderBy([{ column: 'occurred_at', order: 'desc' }, { column: 'seq', order: 'desc' }]).first();
  for (const query of [firstQuery, lastQuery]) {
    if (from) query.where('occurred_at', '>=', from);
    if (to) query.where('occurred_at', '<', to);
  }
  const [first, last] = (await Promise.all([firstQuery, lastQuery])) as Array<{ seq: number } | undefined>;
  if (!first || !last) return null;
  return { first: Number(first.seq), last: Number(last.seq) };
}

/** Adds the filter's conditions to a query of audit_events. */
function applyFilter(query: Knex.QueryBuilder, filter: AuditFilter, seqRange: { first: number; last: number } | null): void {
  if (filter.repository !== undefined) query.where('repository', filter.repository);
  // LIKE with a constant prefix uses the text_pattern_ops index; the escape character is a backslash.
  if (filter.repositoryPrefix !== undefined) query.whereRaw(`repository like ? escape '\\'`, [`${escapeLike(filter.repositoryPrefix)}%`]);
  if (filter.digest !== undefined) query.where('digest', filter.digest);
  if (filter.tag !== undefined) query.where('reference', filter.tag);
  if (filter.actor !== undefined) query.where('actor_subject', filter.actor);
  if (filter.actions !== undefined) query.whereIn('action', [...filter.actions]);
  if (filter.decision !== undefined) query.where('decision', filter.decision);
  if (filter.clientAddress !== undefined) query.where('client_address', filter.clientAddress);
  // The time conditions stay beside the sequence bounds, so PostgreSQL skips the month partitions outside the range.
  if (filter.from) query.where('occurred_at', '>=', filter.from);
  if (filter.to) query.where('occurred_at', '<', filter.to);
  if (seqRange) query.whereBetween('seq', [seqRange.first, seqRange.last]);
}

/** Reads up to `limit` events that match the filter and have a sequence number below `before`, newest first. */
async function readBatch(db: Knex, filter: AuditFilter, seqRange: { first: number; last: number } | null, before: number | null, limit: number): Promise<AuditEvent[]> {
  const query = db('audit_events')
    .select(...AUDIT_EVENT_COLUMNS)
    .orderBy('seq', 'desc')
    .limit(limit);
  applyFilter(query, filter, seqRange);
  if (before !== null) query.where('seq', '<', before);
  const rows = (await query) as AuditEventRow[];
  return rows.map(eventOfRow);
}

/** Returns the filter's time range as sequence bounds; `empty` when no event falls in it. */
async function boundsOf(db: Knex, filter: AuditFilter): Promise<{ empty: boolean; seqRange: { first: number; last: number } | null }> {
  if (!filter.from && !filter.to) return { empty: false, seqRange: null };
  const seqRange = await seqRangeOf(db, filter.from, filter.to);
  return { empty: seqRange === null, seqRange };
}

/**
 * Returns one page of the events that match a query, newest first (by
 * sequence number). Throws InvalidAuditQueryError for an invalid cursor,
 * limit or filter.
 */
export async function queryEvents(db: Knex, query: AuditQuery): Promise<AuditPage> {
  checkFilter(query);
  const limit = query.limit ?? DEFAULT_QUERY_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) throw new InvalidAuditQueryError('limit', `must be an integer from 1 to ${MAX_QUERY_LIMIT}`);
  const before = query.cursor === undefined || query.cursor === null ? null : decodeCursor(query.cursor);

  const bounds = await boundsOf(db, query);
  if (bounds.empty) return { events: [], nextCursor: null };

  // One row beyond the page shows whether another page follows.
  const events = await readBatch(db, query, bounds.seqRange, before, limit + 1);
  if (events.length <= limit) return { events, nextCursor: null };
  const page = events.slice(0, limit);
  return { events: page, nextCursor: encodeCursor(page[page.length - 1]!.seq) };
}

/**
 * Yields every event that matches a filter, newest first, reading
 * `batchSize` rows per query below the last sequence number read, so memory
 * stays constant however long the result is. Events appended while it runs
 * are newer than its first batch and are not yielded. Stopping the iteration
 * (break, return, or a destroyed stream) stops the queries.
 */
export async function* streamEvents(db: Knex, filter: AuditFilter, options: { batchSize?: number } = {}): AsyncGenerator<AuditEvent, void, undefined> {
  checkFilter(filter);
  const batchSize = options.batchSize ?? EXPORT_BATCH_SIZE;
  const bounds = await boundsOf(db, filter);
  if (bounds.empty) return;

  let before: number | null = null;
  for (;;) {
    const batch = await readBatch(db, filter, bounds.seqRange, before, batchSize);
    yield* batch;
    if (batch.length < batchSize) return;
    before = batch[batch.length - 1]!.seq;
  }
}
