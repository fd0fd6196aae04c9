/**
 * Audit events for the query tests, appended to the real chain with times
 * that the test chooses, so filters on time can be checked.
 */
import { linkEvents, type AuditEvent, type AuditEventInput } from '../../src/audit/chain.js';
import { emptyInput } from '../../src/audit/store.js';
import type { Database } from '../../src/db/database.js';

/** An event's facts; unset ones are empty, the actor is a user, and the time is now. */
export type TestEvent = Partial<AuditEventInput> & { action: string; occurredAt?: Date };

/**
 * Appends events in order, each at its own time, and moves the chain head
 * past them. Times must not go backwards, as they never do on a real chain.
 */
export async function appendTestEvents(db: Database, events: readonly TestEvent[]): Promise<AuditEvent[]> {
  return db.transaction(async (trx) => {
    const head = (await trx('audit_chain').where({ id: 1 }).forUpdate().first('last_seq', 'last_hash')) as { last_seq: number; last_hash: string };
    let lastSeq = Number(head.last_seq);
    let lastHash = head.last_hash;
    const appended: AuditEvent[] = [];

    for (const { occurredAt, ...facts } of events) {
      const input: AuditEventInput = { ...emptyInput(facts.action, 'test-replica'), actorKind: 'user', ...facts };
      const [event] = linkEvents([input], lastSeq, lastHash, occurredAt ?? new Date());
      await trx('audit_events').insert({
        seq: event!.seq,
        occurred_at: event!.occurredAt,
        action: event!.action,
        actor_kind: event!.actorKind,
        actor_subject: event!.actorSubject,
        token_id: event!.tokenId,
        client_address: event!.clientAddress,
        user_agent: event!.userAgent,
        request_id: event!.requestId,
        repository: event!.repository,
        reference: event!.reference,
        digest: event!.digest,
        media_type: event!.mediaType,
        bytes: event!.bytes,
        decision: event!.decision,
        reason: event!.reason,
        policy: event!.policy,
        certification_state: event!.certificationState,
        replica: event!.replica,
        details: JSON.stringify(event!.details),
        content_hash: event!.contentHash,
        prev_hash: event!.prevHash,
        hash: event!.hash,
      });
      appended.push(event!);
      lastSeq = event!.seq;
      lastHash = event!.hash;
    }

    const last = appended[appended.length - 1];
    if (last) await trx('audit_chain').where({ id: 1 }).update({ last_seq: last.seq, last_hash: last.hash, last_at: last.occurredAt });
    return appended;
  });
}

/** Returns a digest made of one repeated hex character, such as sha256:aaaa…. */
export function fakeDigest(character: string): string {
  return `sha256:${character.repeat(64)}`;
}
