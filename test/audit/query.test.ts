import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuditEvent } from '../../src/audit/chain.js';
import { decodeCursor, encodeCursor, escapeLike, InvalidAuditQueryError, MAX_QUERY_LIMIT, queryEvents, streamEvents, type AuditQuery } from '../../src/audit/query.js';
import type { Database } from '../../src/db/database.js';
import { appendTestEvents, fakeDigest, type TestEvent } from '../helpers/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/** The fixture's events happen on 2024-03-01 and 2024-03-02, one minute apart; other tests append at the current time. */
const DAY_ONE = new Date('2024-03-01T00:00:00Z');
const DAY_TWO = new Date('2024-03-02T00:00:00Z');
const DAY_THREE = new Date('2024-03-03T00:00:00Z');

function minutesAfter(start: Date, minutes: number): Date {
  return new Date(start.getTime() + minutes * 60_000);
}

const FIXTURE: TestEvent[] = [
  { action: 'manifest.push', repository: 'team-a/app', reference: 'v1', digest: fakeDigest('a'), actorSubject: 'alice', clientAddress: '10.0.0.1', occurredAt: minutesAfter(DAY_ONE, 0) },
  { action: 'manifest.pull', repository: 'team-a/app', reference: 'v1', digest: fakeDigest('a'), decision: 'allowed', actorSubject: 'bob', clientAddress: '10.0.0.2', occurredAt: minutesAfter(DAY_ONE, 1) },
  { action: 'blob.pull', repository: 'team-a/app', digest: fakeDigest('b'), decision: 'would-deny', actorSubject: 'bob', clientAddress: '10.0.0.2', occurredAt: minutesAfter(DAY_ONE, 2) },
  { action: 'pull.denied', repository: 'team-a/lib', digest: fakeDigest('c'), decision: 'denied', actorSubject: 'carol', clientAddress: '10.0.0.3', occurredAt: minutesAfter(DAY_ONE, 3) },
  { action: 'manifest.pull', repository: 'team-b/app', reference: 'v1', digest: fakeDigest('d'), decision: 'allowed', actorSubject: 'alice', clientAddress: '2001:db8::1', occurredAt: minutesAfter(DAY_TWO, 0) },
  { action: 'tag.delete', repository: 'team-b/app', reference: 'v1', digest: fakeDigest('d'), actorSubject: 'alice', occurredAt: minutesAfter(DAY_TWO, 1) },
  // Names in which `_` and `%` would match any character if they were not escaped.
  { action: 'manifest.pull', repository: 'under_score/app', decision: 'allowed', occurredAt: minutesAfter(DAY_TWO, 2) },
  { action: 'manifest.pull', repository: 'underXscore/app', decision: 'allowed', occurredAt: minutesAfter(DAY_TWO, 3) },
  { action: 'manifest.pull', repository: '100%/app', decision: 'allowed', occurredAt: minutesAfter(DAY_TWO, 4) },
  { action: 'manifest.pull', repository: '100x/app', decision: 'allowed', occurredAt: minutesAfter(DAY_TWO, 5) },
];

describe('audit event queries', () => {
  let database: TestDatabase;
  let db: Database;
  let fixture: AuditEvent[];

  /** Returns the sequence numbers that a query finds among the fixture's events. */
  async function seqsOf(query: AuditQuery): Promise<number[]> {
    const page = await queryEvents(db, { from: DAY_ONE, to: DAY_THREE, ...query });
    return page.events.map((event) => event.seq);
  }

  /** Returns the sequence numbers of fixture events by their index, newest first as queries return them. */
  function expected(...indexes: number[]): number[] {
    return indexes.map((index) => fixture[index]!.seq).sort((a, b) => b - a);
  }

  before(async () => {
    database = await createTestDatabase();
    db = database.db;
    fixture = await appendTestEvents(db, FIXTURE);
  });
  after(() => database.drop());

  describe('filters', () => {
    test('repository matches exactly', async () => {
      assert.deepEqual(await seqsOf({ repository: 'team-a/app' }), expected(0, 1, 2));
    });

    test('repositoryPrefix matches the start of the name', async () => {
      assert.deepEqual(await seqsOf({ repositoryPrefix: 'team-a/' }), expected(0, 1, 2, 3));
    });

    test('repositoryPrefix treats _ literally', async () => {
      assert.deepEqual(await seqsOf({ repositoryPrefix: 'under_' }), expected(6));
    });

    test('repositoryPrefix treats % literally', async () => {
      assert.deepEqual(await seqsOf({ repositoryPrefix: '100%' }), expected(8));
    });

    test('escapeLike escapes backslash, % and _', () => {
      assert.equal(escapeLike('a\\b%c_d'), 'a\\\\b\\%c\\_d');
    });

    test('digest matches exactly', async () => {
      assert.deepEqual(await seqsOf({ digest: fakeDigest('d') }), expected(4, 5));
    });

    test('tag matches the reference', async () => {
      assert.deepEqual(await seqsOf({ tag: 'v1', repository: 'team-a/app' }), expected(0, 1));
    });

    test('actor matches the subject', async () => {
      assert.deepEqual(await seqsOf({ actor: 'bob' }), expected(1, 2));
    });

    test('one action', async () => {
      assert.deepEqual(await seqsOf({ actions: ['pull.denied'] }), expected(3));
    });

    test('a list of actions matches any of them', async () => {
      assert.deepEqual(await seqsOf({ actions: ['manifest.push', 'tag.delete'] }), expected(0, 5));
    });

    test('decision', async () => {
      assert.deepEqual(await seqsOf({ decision: 'would-deny' }), expected(2));
    });

    test('clientAddress', async () => {
      assert.deepEqual(await seqsOf({ clientAddress: '2001:db8::1' }), expected(4));
    });

    test('from is inclusive', async () => {
      assert.deepEqual(await seqsOf({ from: minutesAfter(DAY_TWO, 4) }), expected(8, 9));
    });

    test('to is exclusive', async () => {
      assert.deepEqual(await seqsOf({ to: minutesAfter(DAY_ONE, 1) }), expected(0));
    });

    test('a time range without events returns an empty last page', async () => {
      const page = await queryEvents(db, { from: new Date('2020-01-01T00:00:00Z'), to: new Date('2020-01-02T00:00:00Z') });
      assert.deepEqual(page, { events: [], nextCursor: null });
    });

    test('filters combine with AND', async () => {
      assert.deepEqual(await seqsOf({ actor: 'alice', actions: ['manifest.pull'] }), expected(4));
    });

    test('events come newest first', async () => {
      const seqs = await seqsOf({});
      assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a));
    });

    test('events keep every stored field', async () => {
      const page = await queryEvents(db, { digest: fakeDigest('b') });
      assert.deepEqual(page.events, [fixture[2]]);
    });
  });

  describe('invalid requests', () => {
    test('a limit above the maximum throws', async () => {
      await assert.rejects(queryEvents(db, { limit: MAX_QUERY_LIMIT + 1 }), (error: unknown) => error instanceof InvalidAuditQueryError && error.field === 'limit');
    });

    test('a limit of 0 throws', async () => {
      await assert.rejects(queryEvents(db, { limit: 0 }), (error: unknown) => error instanceof InvalidAuditQueryError && error.field === 'limit');
    });

    test('from after to throws', async () => {
      await assert.rejects(queryEvents(db, { from: DAY_TWO, to: DAY_ONE }), (error: unknown) => error instanceof InvalidAuditQueryError && error.field === 'from');
    });

    test('an empty repositoryPrefix throws', async () => {
      await assert.rejects(queryEvents(db, { repositoryPrefix: '' }), (error: unknown) => error instanceof InvalidAuditQueryError && error.field === 'repositoryPrefix');
    });

    for (const [name, cursor] of [
      ['not base64url', 'a+b/'],
      ['not JSON', Buffer.from('{').toString('base64url')],
      ['an array', Buffer.from('[1]').toString('base64url')],
      ['a negative position', Buffer.from('{"before":-1}').toString('base64url')],
      ['a fractional position', Buffer.from('{"before":1.5}').toString('base64url')],
      ['an extra key', Buffer.from('{"before":1,"x":2}').toString('base64url')],
    ] as const) {
      test(`a cursor with ${name} throws`, async () => {
        await assert.rejects(queryEvents(db, { cursor }), (error: unknown) => error instanceof InvalidAuditQueryError && error.field === 'cursor');
      });
    }

    test('a cursor round-trips its position', () => {
      assert.equal(decodeCursor(encodeCursor(12345)), 12345);
    });
  });

  describe('pagination', () => {
    test('the default page holds 100 events', async () => {
      await appendTestEvents(db, Array.from({ length: 101 }, () => ({ action: 'blob.pull', repository: 'paged/default', decision: 'allowed' as const })));
      const page = await queryEvents(db, { repository: 'paged/default' });
      assert.equal(page.events.length, 100);
      assert.notEqual(page.nextCursor, null);
    });

    test('a last page of exactly the limit has no next cursor', async () => {
      await appendTestEvents(db, Array.from({ length: 3 }, () => ({ action: 'blob.pull', repository: 'paged/exact' })));
      const page = await queryEvents(db, { repository: 'paged/exact', limit: 3 });
      assert.equal(page.events.length, 3);
      assert.equal(page.nextCursor, null);
    });

    test('pages stay stable while new events are appended', async () => {
      const original = await appendTestEvents(db, Array.from({ length: 25 }, (_, index) => ({ action: 'manifest.pull', repository: 'paged/moving', requestId: `original-${index}` })));
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: Awaited<ReturnType<typeof queryEvents>> = await queryEvents(db, { repository: 'paged/moving', limit: 10, cursor });
        seen.push(...page.events.map((event) => event.seq));
        cursor = page.nextCursor;
        pages += 1;
        // Newer events arrive between pages, as on a busy gateway.
        await appendTestEvents(db, Array.from({ length: 4 }, () => ({ action: 'manifest.pull', repository: 'paged/moving' })));
      } while (cursor !== null);

      assert.equal(pages, 3);
      assert.equal(new Set(seen).size, seen.length, 'an event was returned twice');
      assert.deepEqual(seen, original.map((event) => event.seq).reverse());
    });
  });

  describe('streamEvents', () => {
    test('yields every matching event newest first across batches', async () => {
      const appended = await appendTestEvents(db, Array.from({ length: 23 }, () => ({ action: 'blob.pull', repository: 'streamed/all' })));
      const seqs: number[] = [];
      for await (const event of streamEvents(db, { repository: 'streamed/all' }, { batchSize: 5 })) seqs.push(event.seq);
      assert.deepEqual(seqs, appended.map((event) => event.seq).reverse());
    });

    test('honours the time filter', async () => {
      const seqs: number[] = [];
      for await (const event of streamEvents(db, { from: DAY_TWO, to: DAY_THREE }, { batchSize: 2 })) seqs.push(event.seq);
      assert.deepEqual(seqs, expected(4, 5, 6, 7, 8, 9));
    });

    test('stops querying when the consumer stops', async () => {
      await appendTestEvents(db, Array.from({ length: 50 }, () => ({ action: 'blob.pull', repository: 'streamed/stopped' })));
      let queries = 0;
      const count = () => {
        queries += 1;
      };
      db.on('query', count);
      try {
        let read = 0;
        for await (const _event of streamEvents(db, { repository: 'streamed/stopped' }, { batchSize: 5 })) {
          read += 1;
          if (read === 7) break;
        }
      } finally {
        db.removeListener('query', count);
      }
      assert.equal(queries, 2);
    });
  });
});
