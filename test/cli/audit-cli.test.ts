import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { appendTestEvents, fakeDigest } from '../helpers/audit.js';
import { createTestUser, startTestServer, type TestServer } from '../helpers/server.js';
import { runCli, type CliResult } from '../helpers/cli.js';

/** Runs the CLI with only the given PORTCULLIS_* variables set, whatever the test process has. */
function runCliWith(args: string[], env: Record<string, string>): Promise<CliResult> {
  return runCli(args, { env, withoutPortcullisEnv: true, timeoutMs: 30_000 });
}

/** Runs statements as a superuser that switched triggers off, as an attacker with database access could. */
async function bypassingTriggers(server: TestServer, sql: string): Promise<void> {
  await server.db.transaction(async (trx) => {
    await trx.raw('set local session_replication_role = replica');
    await trx.raw(sql);
  });
}

const REPOSITORY = 'cli-audit/app';
const DIGEST = fakeDigest('e');

// Each run starts a Node process that compiles the CLI with tsx, about two seconds, so independent tests run four at a time.
describe('portcullis audit', { concurrency: 4 }, () => {
  let server: TestServer;
  let auditor: Record<string, string>;
  let directory: string;

  before(async () => {
    server = await startTestServer();
    await createTestUser(server.db, 'cli-auditor', ['auditors'], 'cli-auditor-password');
    auditor = { PORTCULLIS_URL: server.url, PORTCULLIS_USERNAME: 'cli-auditor', PORTCULLIS_PASSWORD: 'cli-auditor-password' };
    directory = await mkdtemp(path.join(os.tmpdir(), 'portcullis-audit-cli-'));
    await appendTestEvents(server.db, [
      { action: 'manifest.pull', repository: REPOSITORY, reference: 'v1', digest: DIGEST, decision: 'allowed', actorSubject: 'alice', clientAddress: '192.0.2.7' },
      { action: 'manifest.pull', repository: REPOSITORY, reference: 'v1', digest: DIGEST, decision: 'allowed', actorSubject: 'bob', clientAddress: '192.0.2.8' },
      { action: 'certification.revocation', repository: REPOSITORY, digest: DIGEST, certificationState: 'revoked', reason: 'leaked key', details: { by: 'sam' } },
      { action: 'pull.denied', repository: REPOSITORY, reference: 'v1', digest: DIGEST, decision: 'denied', actorSubject: 'alice', clientAddress: '192.0.2.7' },
    ]);
  });
  after(async () => {
    await server.close();
    await rm(directory, { recursive: true, force: true });
  });

  test('query prints matching events newest first', async () => {
    const result = await runCliWith(['audit', 'query', '--repository', REPOSITORY, '--action', 'manifest.pull'], auditor);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /manifest\.pull {2}bob \(user\) {2}192\.0\.2\.8 {2}cli-audit\/app:v1@sha256:e{64} {2}allowed$/);
  });

  test('query --limit prints the next cursor', async () => {
    const result = await runCliWith(['audit', 'query', '--repository', REPOSITORY, '--limit', '1'], auditor);
    assert.match(result.stdout, /^more: --cursor [A-Za-z0-9_-]+$/m);
  });

  test('query --json prints the API response', async () => {
    const result = await runCliWith(['audit', 'query', '--repository', REPOSITORY, '--json'], auditor);
    const body = JSON.parse(result.stdout) as { events: Array<{ action: string }>; nextCursor: string | null };
    assert.deepEqual(
      body.events.map((event) => event.action),
      ['pull.denied', 'certification.revocation', 'manifest.pull', 'manifest.pull'],
    );
  });

  test('query with an invalid time exits 1 with the API message', async () => {
    const result = await runCliWith(['audit', 'query', '--from', 'yesterday'], auditor);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^portcullis: from: invalid time.*\(HTTP 400 INVALID_REQUEST\)$/m);
  });

  test('export --format ndjson --output writes the file', async () => {
    const file = path.join(directory, 'events.ndjson');
    const result = await runCliWith(['audit', 'export', '--format', 'ndjson', '--repository', REPOSITORY, '--output', file], auditor);
    assert.equal(result.code, 0, result.stderr);
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, 4);
    assert.equal((JSON.parse(lines[0]!) as { action: string }).action, 'pull.denied');
  });

  test('export --format csv writes to standard output', async () => {
    const result = await runCliWith(['audit', 'export', '--format', 'csv', '--repository', REPOSITORY, '--actor', 'bob'], auditor);
    assert.equal(result.code, 0, result.stderr);
    const rows = result.stdout.split('\r\n').filter((row) => row !== '');
    assert.equal(rows.length, 2);
    assert.match(rows[0]!, /^seq,occurredAt,action,/);
  });

  test('pulls prints each actor', async () => {
    const result = await runCliWith(['audit', 'pulls', '--digest', DIGEST], auditor);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^2 pulls of sha256:e{64}$/m);
    assert.match(result.stdout, /^ {2}alice \(user\): 1 pull, .* from 192\.0\.2\.7$/m);
  });

  test('exposure prints the revocation and the pulls before it', async () => {
    const result = await runCliWith(['audit', 'exposure', '--repository', REPOSITORY, '--digest', DIGEST], auditor);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^status: revoked$/m);
    assert.match(result.stdout, /^revocation: .* by sam: leaked key$/m);
    assert.match(result.stdout, /^pulls before .*: 2$/m);
  });

  test('verify exits 0 on an intact chain', async () => {
    const result = await runCliWith(['audit', 'verify'], auditor);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ok: \d+ events checked/);
  });

  test('a caller without audit:read exits 1', async () => {
    const admin = { PORTCULLIS_URL: server.url, PORTCULLIS_USERNAME: server.admin.username, PORTCULLIS_PASSWORD: server.admin.password };
    const result = await runCliWith(['audit', 'verify'], admin);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /lacks the audit:read permission.*\(HTTP 403 FORBIDDEN\)$/m);
  });
});

describe('portcullis audit verify on a broken chain', () => {
  let server: TestServer;
  let result: CliResult;

  before(async () => {
    server = await startTestServer();
    await createTestUser(server.db, 'cli-auditor', ['auditors'], 'cli-auditor-password');
    const [event] = await appendTestEvents(server.db, [{ action: 'manifest.pull', repository: REPOSITORY, decision: 'allowed' }]);
    await bypassingTriggers(server, `update audit_events set repository = 'elsewhere/app' where seq = ${event!.seq}`);
    result = await runCliWith(['audit', 'verify'], { PORTCULLIS_URL: server.url, PORTCULLIS_USERNAME: 'cli-auditor', PORTCULLIS_PASSWORD: 'cli-auditor-password' });
  });
  after(() => server.close());

  test('exits 1', () => {
    assert.equal(result.code, 1, result.stderr);
  });

  test('prints the altered event', () => {
    assert.match(result.stdout, /^broken at event #\d+ \(content\): event \d+ was changed after it was written/m);
  });
});
