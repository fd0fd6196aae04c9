/**
 * Time of a filtered audit query (one repository, one day, first page of 100
 * events) on a trail of 10,000 events and on one of 1,000,000, through
 * queryEvents as the events API runs it. Prints the median and p95 of each
 * and the ratio of the medians.
 *
 * The events are inserted with generate_series: 200 repositories over 100
 * days in month partitions, with placeholder hashes, because the query reads
 * no hash. Usage: node --import tsx bench/audit-query.ts [runs, default 300]
 * Database: fresh databases on TEST_DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { queryEvents, type AuditQuery } from '../src/audit/query.js';
import { ensurePartitions } from '../src/audit/store.js';
import { createDatabase, migrateToLatest, type Database } from '../src/db/database.js';

const runs = Number(process.argv[2] ?? 300);
const serverUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DAYS = 100;
const REPOSITORIES = 200;
const DAY_MS = 86_400_000;
const end = new Date(Date.UTC(2026, 5, 1));
const start = new Date(end.getTime() - DAYS * DAY_MS);

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  await client.query(sql);
  await client.end();
}

async function createTrail(total: number): Promise<{ db: Database; name: string }> {
  const name = `portcullis_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const db = createDatabase(url.toString());
  await migrateToLatest(db, pino({ level: 'silent' }));
  for (let month = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), 1)); month < end; month = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1))) {
    await ensurePartitions(db, month, 0);
  }
  const stepMs = (DAYS * DAY_MS) / total;
  await db.raw(
    `insert into audit_events (seq, occurred_at, action, actor_kind, actor_subject, client_address, repository, digest, decision, replica, details, content_hash, prev_hash, hash)
     select i, ?::timestamptz + (i * ?::float8) * interval '1 millisecond',
            case when i % 3 = 0 then 'manifest.pull' else 'blob.pull' end, 'user', 'user-' || (i % 50), '10.0.' || (i % 200) || '.1',
            'team-' || (i % 20) || '/app-' || (i % ${REPOSITORIES}), 'sha256:' || md5(i::text) || md5((i + 1)::text), 'allowed', 'bench', '{}'::jsonb,
            repeat('0', 64), repeat('0', 64), repeat('0', 64)
       from generate_series(1, ?) as i`,
    [start, stepMs, total],
  );
  await db.raw('vacuum analyze audit_events');
  return { db, name };
}

async function measure(db: Database, query: AuditQuery): Promise<{ median: number; p95: number; events: number }> {
  let events = 0;
  for (let warm = 0; warm < 20; warm += 1) events = (await queryEvents(db, query)).events.length;
  const times: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    const started = process.hrtime.bigint();
    await queryEvents(db, query);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, p95: times[Math.floor(times.length * 0.95)]!, events };
}

const day = new Date(start.getTime() + 50 * DAY_MS);
const query: AuditQuery = { repository: 'team-7/app-27', from: day, to: new Date(day.getTime() + DAY_MS), limit: 100 };
const results: Record<string, { median: number; p95: number; events: number }> = {};
for (const total of [10_000, 1_000_000]) {
  const loadStarted = Date.now();
  const trail = await createTrail(total);
  try {
    const result = await measure(trail.db, query);
    results[total] = result;
    console.log(`${String(total).padStart(9)} events (loaded in ${((Date.now() - loadStarted) / 1000).toFixed(1)} s): one repository, one day -> ${result.events} events, median ${result.median.toFixed(3)} ms, p95 ${result.p95.toFixed(3)} ms over ${runs} runs`);
  } finally {
    await trail.db.destroy();
    await adminQuery(`drop database if exists ${trail.name} with (force)`);
  }
}
const ratio = results[1_000_000]!.median / results[10_000]!.median;
console.log(`ratio of medians 1,000,000 / 10,000: ${ratio.toFixed(2)} (requirement: at most 2)`);
