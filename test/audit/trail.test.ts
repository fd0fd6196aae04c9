import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { GENESIS_HASH } from '../../src/audit/chain.js';
import { appendEvents, emptyInput, ensurePartitions, monthPartition } from '../../src/audit/store.js';
import { verifyChain } from '../../src/audit/verify.js';
import { AuditUnavailableError, AuditWriter } from '../../src/audit/writer.js';
import { createDatabase, type Database } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const silent = pino({ level: 'silent' });

async function appendOne(db: Database, action: string, replica = 'r1'): Promise<void> {
  await db.transaction(async (trx) => {
    await appendEvents(trx, [{ ...emptyInput(action, replica), repository: 'team/app' }]);
  });
}

/** Runs statements as a superuser that switched triggers off, as an attacker with database access could. */
async function bypassingTriggers(db: Database, sql: string, bindings: unknown[] = []): Promise<void> {
  await db.transaction(async (trx) => {
    await trx.raw('set local session_replication_role = replica');
    await trx.raw(sql, bindings as never[]);
  });
}

async function seqs(db: Database): Promise<number[]> {
  const rows: Array<{ seq: number }> = await db('audit_events').orderBy('seq').select('seq');
  return rows.map((row) => Number(row.seq));
}

/** Runs `work` on a new database whose trail has `events` events, then drops the database. */
async function withTrail(events: number, work: (db: Database) => Promise<void>): Promise<void> {
  const fresh = await createTestDatabase();
  try {
    await ensurePartitions(fresh.db, new Date());
    for (let index = 0; index < events; index += 1) await appendOne(fresh.db, `test.${index}`);
    await work(fresh.db);
  } finally {
    await fresh.drop();
  }
}

describe('audit trail in PostgreSQL', () => {
  let database: TestDatabase;
  let db: Database;

  before(async () => {
    database = await createTestDatabase();
    db = database.db;
    await ensurePartitions(db, new Date());
  });

  after(async () => {
    await database.drop();
  });

  describe('group commit', () => {
    test('concurrent appends get gap-free numbers in one chain', async () => {
      const writer = new AuditWriter(db, silent);
      const start = (await db('audit_chain').first('last_seq')).last_seq as number;
      await Promise.all(Array.from({ length: 200 }, (_, index) => writer.append({ ...emptyInput('manifest.pull', 'r1'), requestId: `req-${index}` })));
      const numbers = (await seqs(db)).filter((seq) => seq > start);
      assert.deepEqual(numbers, Array.from({ length: 200 }, (_, index) => start + index + 1));
    });

    test('concurrent appends are committed in fewer transactions than events', async () => {
      const writer = new AuditWriter(db, silent);
      let transactions = 0;
      const listener = (query: { sql: string }) => {
        if (/^select last_seq/.test(query.sql.trim())) transactions += 1;
      };
      db.on('query', listener);
      try {
        await Promise.all(Array.from({ length: 100 }, () => writer.append(emptyInput('blob.pull', 'r1'))));
      } finally {
        db.removeListener('query', listener);
      }
      assert.ok(transactions < 100, `expected fewer than 100 chain transactions, saw ${transactions}`);
    });

    test('the chain is valid after two replicas appended at once', async () => {
      const second = createDatabase(database.url, { poolMax: 4 });
      try {
        const firstWriter = new AuditWriter(db, silent);
        const secondWriter = new AuditWriter(second, silent);
        await Promise.all(Array.from({ length: 150 }, (_, index) => (index % 2 === 0 ? firstWriter : secondWriter).append(emptyInput('manifest.pull', index % 2 === 0 ? 'r1' : 'r2'))));
        const report = await verifyChain(db);
        assert.equal(report.problem, null);
      } finally {
        await second.destroy();
      }
    });

    test('event times never decrease along the chain', async () => {
      const rows: Array<{ occurred_at: Date }> = await db('audit_events').orderBy('seq').select('occurred_at');
      const times = rows.map((row) => row.occurred_at.getTime());
      assert.deepEqual(times, [...times].sort((a, b) => a - b));
    });

    test('an append whose transaction fails rejects with AuditUnavailableError', async () => {
      const broken = createDatabase('postgres://postgres@127.0.0.1:1/none', { poolMax: 1 });
      try {
        const writer = new AuditWriter(broken, silent);
        await assert.rejects(writer.append(emptyInput('manifest.pull', 'r1')), AuditUnavailableError);
      } finally {
        await broken.destroy();
      }
    });

    test('a detached append that fails is kept and written later', async () => {
      const writer = new AuditWriter(db, silent);
      const before = await db('audit_chain').first('last_seq');
      // Make the first attempt fail by renaming the chain table for its duration.
      await db.raw('alter table audit_chain rename to audit_chain_away');
      try {
        await writer.appendDetached({ ...emptyInput('manifest.pull', 'r1'), requestId: 'late-one' });
      } finally {
        await db.raw('alter table audit_chain_away rename to audit_chain');
      }
      assert.equal(writer.backlogSize, 1);
      await writer.drain();
      const row: { details: { observedAt?: string } } | undefined = await db('audit_events').where({ request_id: 'late-one' }).first('details');
      assert.equal(typeof row?.details.observedAt, 'string');
      assert.ok(Number((await db('audit_chain').first('last_seq')).last_seq) > Number(before.last_seq));
    });
  });

  describe('a full backlog', () => {
    test('records how many events it dropped', async () => {
      const writer = new AuditWriter(db, silent, { maxBacklog: 1, replica: 'r-drop' });
      await db.raw('alter table audit_chain rename to audit_chain_away');
      try {
        for (let index = 0; index < 3; index += 1) await writer.appendDetached({ ...emptyInput('manifest.pull', 'r-drop'), requestId: `dropped-${index}` });
      } finally {
        await db.raw('alter table audit_chain_away rename to audit_chain');
      }
      await writer.drain();
      const row: { details: { events: number } } | undefined = await db('audit_events').where({ action: 'audit.dropped', replica: 'r-drop' }).first('details');
      assert.equal(row?.details.events, 2);
    });

    test('keeps the events it could hold', async () => {
      const keptEvent = await db('audit_events').where({ request_id: 'dropped-0' }).first('seq');
      assert.notEqual(keptEvent, undefined);
    });
  });

  describe('append-only rules', () => {
    test('UPDATE of an audit row is rejected', async () => {
      await appendOne(db, 'policy.change');
      await assert.rejects(db('audit_events').update({ repository: 'changed' }).where('seq', '>', 0), /append-only/);
    });

    test('DELETE of an audit row is rejected', async () => {
      await assert.rejects(db('audit_events').delete().where('seq', '>', 0), /append-only/);
    });

    test('TRUNCATE of the audit table is rejected', async () => {
      await assert.rejects(db.raw('truncate audit_events'), /append-only/);
    });

    test('TRUNCATE of a month partition is rejected', async () => {
      await assert.rejects(db.raw(`truncate ${monthPartition(new Date()).name}`), /append-only/);
    });

    test('moving the chain head back is rejected', async () => {
      await assert.rejects(db('audit_chain').update({ last_seq: 0 }), /only moves forward/);
    });
  });

  describe('verify', () => {
    test('an untouched trail verifies', async () => {
      const report = await verifyChain(db);
      assert.equal(report.ok, true);
    });

    test('verify counts every event', async () => {
      const count = Number((await db('audit_events').count<{ count: string }>('* as count').first())?.count);
      assert.equal((await verifyChain(db)).checked, count);
    });
  });
});

describe('tampering found by verify', () => {
  let database: TestDatabase;
  let db: Database;

  before(async () => {
    database = await createTestDatabase();
    db = database.db;
    await ensurePartitions(db, new Date());
  });

  after(async () => {
    await database.drop();
  });

  async function freshChain(count: number): Promise<number> {
    const first = Number((await db('audit_chain').first('last_seq')).last_seq) + 1;
    for (let index = 0; index < count; index += 1) await appendOne(db, `test.${index}`);
    return first;
  }

  test('an edited field is reported at the edited event', async () => {
    const first = await freshChain(10);
    await bypassingTriggers(db, 'update audit_events set repository = ? where seq = ?', ['team/elsewhere', first + 4]);
    const report = await verifyChain(db);
    assert.deepEqual([report.problem?.kind, report.problem?.seq], ['content', first + 4]);
  });

  test('a rewritten hash is reported at its event', async () => {
    await bypassingTriggers(db, 'update audit_events set repository = ? where seq = ?', ['team/app', (await db('audit_events').where({ repository: 'team/elsewhere' }).first('seq')).seq]);
    const first = await freshChain(5);
    const target = first + 2;
    await bypassingTriggers(db, `update audit_events set hash = repeat('a', 64) where seq = ?`, [target]);
    const report = await verifyChain(db);
    assert.deepEqual([report.problem?.kind, report.problem?.seq], ['hash', target]);
  });

  test('a deleted event is reported as missing at its number', async () => {
    await withTrail(8, async (trail) => {
      await bypassingTriggers(trail, 'delete from audit_events where seq = 5');
      const report = await verifyChain(trail);
      assert.deepEqual([report.problem?.kind, report.problem?.seq], ['missing', 5]);
    });
  });

  test('deleted events at the end are reported as missing', async () => {
    await withTrail(6, async (trail) => {
      await bypassingTriggers(trail, 'delete from audit_events where seq >= 5');
      const report = await verifyChain(trail);
      assert.deepEqual([report.problem?.kind, report.problem?.seq], ['missing', 5]);
    });
  });

  test('deleted events at the start are reported as missing', async () => {
    await withTrail(6, async (trail) => {
      await bypassingTriggers(trail, 'delete from audit_events where seq <= 2');
      const report = await verifyChain(trail);
      assert.deepEqual([report.problem?.kind, report.problem?.seq], ['missing', 1]);
    });
  });

  test('a time range verifies from the event before it', async () => {
    await withTrail(3, async (trail) => {
      const middle = new Date();
      await new Promise((resolve) => setTimeout(resolve, 5));
      for (let index = 0; index < 3; index += 1) await appendOne(trail, `test.${index}`);
      const report = await verifyChain(trail, { from: new Date(middle.getTime() + 1) });
      assert.deepEqual([report.ok, report.firstSeq, report.checked], [true, 4, 3]);
    });
  });

  /** Copies an event's row with a shifted time and another repository. The primary key (seq, occurred_at) accepts the copy. */
  async function insertCopy(target: Database, seq: number, shift: string, seqOffset = 0): Promise<void> {
    await target.raw(
      `insert into audit_events (seq, occurred_at, action, actor_kind, actor_subject, replica, repository, details, content_hash, prev_hash, hash)
       select seq + ?, occurred_at + ?::interval, action, actor_kind, 'mallory', replica, 'team/forged', details, content_hash, prev_hash, hash from audit_events where seq = ?`,
      [seqOffset, shift, seq],
    );
  }

  for (const shift of ['1 millisecond', '-1 millisecond']) {
    test(`verify reports a duplicate event number (${shift})`, async () => {
      await withTrail(5, async (trail) => {
        await insertCopy(trail, 3, shift);
        const report = await verifyChain(trail);
        assert.equal(report.ok, false);
        assert.equal(report.problem?.seq, 3);
        assert.match(report.problem?.message ?? '', /event 3/);
      });
    });
  }

  test('verify reports a row beyond the head', async () => {
    await withTrail(4, async (trail) => {
      await insertCopy(trail, 4, '0 seconds', 1);
      const report = await verifyChain(trail);
      assert.equal(report.ok, false);
      assert.deepEqual([report.problem?.kind, report.problem?.seq], ['head', 5]);
    });
  });

  test('an empty trail verifies', async () => {
    const fresh = await createTestDatabase();
    try {
      assert.deepEqual(await verifyChain(fresh.db), { ok: true, checked: 0, firstSeq: null, lastSeq: null, problem: null });
    } finally {
      await fresh.drop();
    }
  });

  test('new chain head has the genesis hash', async () => {
    const fresh = await createTestDatabase();
    try {
      assert.equal((await fresh.db('audit_chain').first('last_hash')).last_hash, GENESIS_HASH);
    } finally {
      await fresh.drop();
    }
  });
});
