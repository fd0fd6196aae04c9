import type { Knex } from 'knex';
import { linkEvents, type AuditActorKind, type AuditDecision, type AuditEvent, type AuditEventInput, type DetailValue } from './chain.js';

/** A row of `audit_events` as the driver returns it. */
export interface AuditEventRow {
  seq: number;
  occurred_at: Date;
  action: string;
  actor_kind: string;
  actor_subject: string | null;
  token_id: string | null;
  client_address: string | null;
  user_agent: string | null;
  request_id: string | null;
  repository: string | null;
  reference: string | null;
  digest: string | null;
  media_type: string | null;
  bytes: number | null;
  decision: string | null;
  reason: string | null;
  policy: string | null;
  certification_state: string | null;
  replica: string;
  details: Record<string, DetailValue>;
  content_hash: string;
  prev_hash: string;
  hash: string;
}

export const AUDIT_EVENT_COLUMNS = [
  'seq', 'occurred_at', 'action', 'actor_kind', 'actor_subject', 'token_id', 'client_address', 'user_agent', 'request_id', 'repository', 'reference', 'digest',
  'media_type', 'bytes', 'decision', 'reason', 'policy', 'certification_state', 'replica', 'details', 'content_hash', 'prev_hash', 'hash',
] as const;

/** Converts a stored row to an event. */
export function eventOfRow(row: AuditEventRow): AuditEvent {
  return {
    seq: Number(row.seq),
    occurredAt: row.occurred_at,
    action: row.action,
    actorKind: row.actor_kind as AuditActorKind,
    actorSubject: row.actor_subject,
    tokenId: row.token_id,
    clientAddress: row.client_address,
    userAgent: row.user_agent,
    requestId: row.request_id,
    repository: row.repository,
    reference: row.reference,
    digest: row.digest,
    mediaType: row.media_type,
    bytes: row.bytes === null ? null : Number(row.bytes),
    decision: row.decision as AuditDecision | null,
    reason: row.reason,
    policy: row.policy,
    certificationState: row.certification_state,
    replica: row.replica,
    details: row.details ?? {},
    contentHash: row.content_hash,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function rowOfEvent(event: AuditEvent): Record<string, unknown> {
  return {
    seq: event.seq,
    occurred_at: event.occurredAt,
    action: event.action,
    actor_kind: event.actorKind,
    actor_subject: event.actorSubject,
    token_id: event.tokenId,
    client_address: event.clientAddress,
    user_agent: event.userAgent,
    request_id: event.requestId,
    repository: event.repository,
    reference: event.reference,
    digest: event.digest,
    media_type: event.mediaType,
    bytes: event.bytes,
    decision: event.decision,
    reason: event.reason,
    policy: event.policy,
    certification_state: event.certificationState,
    replica: event.replica,
    details: JSON.stringify(event.details),
    content_hash: event.contentHash,
    prev_hash: event.prevHash,
    hash: event.hash,
  };
}

/** Rows per INSERT statement; PostgreSQL allows 65535 parameters and a row has 23. */
const ROWS_PER_INSERT = 1000;

/**
 * Appends events to the chain inside a transaction. It locks the chain head,
 * so appends from every replica are numbered and linked one after another,
 * and it holds that lock until the transaction ends: call it as the last
 * statement of a transaction. The events get the database clock's time,
 * truncated to milliseconds and never earlier than the previous event's.
 */
export async function appendEvents(trx: Knex.Transaction, inputs: readonly AuditEventInput[], options: { lockTimeoutMs?: number } = {}): Promise<AuditEvent[]> {
  if (inputs.length === 0) return [];
  // A writer that cannot get the chain head in time fails, so its request gets 503 instead of waiting.
  if (options.lockTimeoutMs !== undefined) await trx.raw(`set local lock_timeout = ${Math.max(1, Math.floor(options.lockTimeoutMs))}`);
  const head = await trx.raw<{ rows: Array<{ last_seq: number; last_hash: string; now: Date }> }>(
    `select last_seq, last_hash, greatest(date_trunc('milliseconds', clock_timestamp()), coalesce(last_at, '-infinity')) as now
       from audit_chain where id = 1 for update`,
  );
  const row = head.rows[0];
  if (!row) throw new Error('the audit chain head row is missing');
  const events = linkEvents(inputs, Number(row.last_seq), row.last_hash, row.now);
  await insertLinkedEvents(trx, events);
  return events;
}

/** Inserts events that follow the chain head and moves the head to the last one; the caller holds the head's row lock. */
export async function insertLinkedEvents(trx: Knex.Transaction, events: readonly AuditEvent[]): Promise<void> {
  for (let start = 0; start < events.length; start += ROWS_PER_INSERT) {
    await trx('audit_events').insert(events.slice(start, start + ROWS_PER_INSERT).map(rowOfEvent));
  }
  const last = events[events.length - 1];
  if (last) await trx('audit_chain').where({ id: 1 }).update({ last_seq: last.seq, last_hash: last.hash, last_at: last.occurredAt });
}

/** Returns an input with every optional fact empty, for callers that fill in a few. */
export function emptyInput(action: string, replica: string): AuditEventInput {
  return {
    action,
    actorKind: 'system',
    actorSubject: null,
    tokenId: null,
    clientAddress: null,
    userAgent: null,
    requestId: null,
    repository: null,
    reference: null,
    digest: null,
    mediaType: null,
    bytes: null,
    decision: null,
    reason: null,
    policy: null,
    certificationState: null,
    replica,
    details: {},
  };
}

/** Returns the month partition that contains a time: its name and its range [start, end). */
export function monthPartition(time: Date): { name: string; start: Date; end: Date } {
  const year = time.getUTCFullYear();
  const month = time.getUTCMonth();
  const start = new Date(Date.UTC(year, month, 1));
  const end = new Date(Date.UTC(year, month + 1, 1));
  return { name: `audit_events_${year}_${String(month + 1).padStart(2, '0')}`, start, end };
}

/**
 * Creates the month partitions from the month of `now` through `monthsAhead`
 * months later, where missing. A month whose rows already went to the default
 * partition keeps them there, and is reported instead of created.
 */
export async function ensurePartitions(db: Knex, now: Date, monthsAhead = 2): Promise<{ created: string[]; skipped: string[] }> {
  const created: string[] = [];
  const skipped: string[] = [];
  for (let offset = 0; offset <= monthsAhead; offset += 1) {
    const partition = monthPartition(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + offset, 1)));
    const exists = await db.raw<{ rows: unknown[] }>('select 1 from pg_class where relname = ?', [partition.name]);
    if (exists.rows.length > 0) continue;
    const inDefault = await db.raw<{ rows: unknown[] }>('select 1 from audit_events_default where occurred_at >= ? and occurred_at < ? limit 1', [partition.start, partition.end]);
    if (inDefault.rows.length > 0) {
      skipped.push(partition.name);
      continue;
    }
    try {
      await db.transaction(async (trx) => {
        await trx.raw(`create table ${partition.name} partition of audit_events for values from ('${partition.start.toISOString()}') to ('${partition.end.toISOString()}')`);
        await trx.raw(`create trigger ${partition.name}_no_truncate before truncate on ${partition.name} for each statement execute function audit_refuse_change()`);
      });
      created.push(partition.name);
    } catch (error) {
      // Another replica created it at the same moment.
      const again = await db.raw<{ rows: unknown[] }>('select 1 from pg_class where relname = ?', [partition.name]);
      if (again.rows.length === 0) throw error;
    }
  }
  return { created, skipped };
}
