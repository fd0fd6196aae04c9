import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { linkEvents } from '../../src/audit/chain.js';
import { emptyInput, ensurePartitions, insertLinkedEvents } from '../../src/audit/store.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

function runCliOn(databaseUrl: string, args: string[]): Promise<CliResult> {
  return runCli(args, { env: { DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' } });
}

describe('portcullis audit archive and verify-archive', () => {
  let database: TestDatabase;
  let directory: string;
  let archive: { code: number | null; stdout: string; stderr: string };

  before(async () => {
    database = await createTestDatabase();
    directory = await mkdtemp(path.join(os.tmpdir(), 'portcullis-archive-cli-'));
    await ensurePartitions(database.db, new Date('2026-01-10T00:00:00Z'), 0);
    await database.db.transaction(async (trx) => {
      const inputs = Array.from({ length: 5 }, () => ({ ...emptyInput('manifest.pull', 'r1'), repository: 'team/app' }));
      await insertLinkedEvents(trx, linkEvents(inputs, 0, '0'.repeat(64), new Date('2026-01-10T08:00:00Z')));
    });
    archive = await runCliOn(database.url, ['audit', 'archive', '--before', '2026-02-01', '--out', directory]);
  });

  after(async () => {
    await database.drop();
    await rm(directory, { recursive: true, force: true });
  });

  test('archive exits with status 0', () => {
    assert.equal(archive.code, 0, archive.stderr);
  });

  test('archive prints the partition and its event count', () => {
    assert.match(archive.stdout, /audit_events_2026_01: 5 events \(1 to 5\)/);
  });

  test('archive writes one file', async () => {
    assert.deepEqual(await readdir(directory), ['audit_events_2026_01.ndjson']);
  });

  test('verify-archive accepts the written file', async () => {
    const result = await runCliOn(database.url, ['audit', 'verify-archive', path.join(directory, 'audit_events_2026_01.ndjson')]);
    assert.equal(result.code, 0, result.stdout);
  });

  test('verify-archive matches the file against its database record', async () => {
    const result = await runCliOn(database.url, ['audit', 'verify-archive', '--against-database', path.join(directory, 'audit_events_2026_01.ndjson')]);
    assert.deepEqual([result.code, (JSON.parse(result.stdout) as { record: string }).record], [0, 'matches']);
  });

  test('verify-archive finds a rewritten file that is consistent in itself', async () => {
    // A copy with one byte of the header's formatting changed keeps a valid chain but not the recorded sha256.
    const original = await readFile(path.join(directory, 'audit_events_2026_01.ndjson'), 'utf8');
    const rewritten = path.join(directory, 'rewritten.ndjson');
    await writeFile(rewritten, original.replace('{"format"', '{ "format"'));
    const result = await runCliOn(database.url, ['audit', 'verify-archive', '--against-database', rewritten]);
    assert.deepEqual([result.code, /sha256 differs/.test(result.stdout)], [1, true]);
  });

  test('verify-archive exits with status 1 for a broken file', async () => {
    const broken = path.join(directory, 'broken.ndjson');
    await writeFile(broken, '{"format":"something-else"}\n');
    assert.equal((await runCliOn(database.url, ['audit', 'verify-archive', broken])).code, 1);
  });

  test('archive rejects an invalid date', async () => {
    const result = await runCliOn(database.url, ['audit', 'archive', '--before', 'next tuesday', '--out', directory]);
    assert.deepEqual([result.code, /invalid --before value/.test(result.stderr)], [1, true]);
  });
});
