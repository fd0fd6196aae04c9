import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { approveAll, createReviewers, decideOk, pushImage, type Reviewers } from '../helpers/certification-api.js';
import { uniqueRepository } from '../helpers/registry-client.js';
import { createTestUser, startTestServer, type TestServer } from '../helpers/server.js';
import { runCli, type CliResult } from '../helpers/cli.js';

/** Runs the CLI with only the given PORTCULLIS_* variables set, whatever the test process has. */
function runCliWith(args: string[], env: Record<string, string>): Promise<CliResult> {
  return runCli(args, { env, withoutPortcullisEnv: true, timeoutMs: 30_000 });
}

/** Returns a port on 127.0.0.1 that nothing listens on at the moment of the call. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  assert.ok(typeof address === 'object' && address !== null, 'the probe server has no TCP address');
  return address.port;
}

// Each run starts a Node process that compiles the CLI with tsx, about two seconds, so independent tests run four at a time.
describe('portcullis certify, status and revoke', { concurrency: 4 }, () => {
  let server: TestServer;
  let reviewers: Reviewers;
  let security: Record<string, string>;
  let qa: Record<string, string>;

  before(async () => {
    server = await startTestServer();
    reviewers = await createReviewers(server);
    await createTestUser(server.db, 'cli-security', ['security'], 'cli-security-password');
    await createTestUser(server.db, 'cli-qa', ['qa'], 'cli-qa-password');
    security = { PORTCULLIS_URL: server.url, PORTCULLIS_USERNAME: 'cli-security', PORTCULLIS_PASSWORD: 'cli-security-password' };
    qa = { PORTCULLIS_URL: server.url, PORTCULLIS_USERNAME: 'cli-qa', PORTCULLIS_PASSWORD: 'cli-qa-password' };
  });
  after(() => server.close());

  describe('certify --approve', () => {
    let result: CliResult;
    let digest: string;

    before(async () => {
      const repository = uniqueRepository('cli');
      digest = await pushImage(server, repository);
      result = await runCliWith(['certify', `${repository}@${digest}`, '--role', 'security', '--approve', '--comment', 'scan clean', '--evidence', '{"scan":"https://ci.example/1"}'], security);
    });

    test('exits 0', () => {
      assert.equal(result.code, 0, result.stderr);
    });

    test('prints the decision and the new state', () => {
      assert.match(result.stdout, /^approved .* for the security role as cli-security$/m);
      assert.match(result.stdout, /^state: pending \(missing: it, qa\)$/m);
    });

    test('stores the comment and evidence', async () => {
      const stored = await server.db('certification_decisions').where({ digest }).first('comment', 'evidence', 'actor');
      assert.deepEqual(stored, { comment: 'scan clean', evidence: { scan: 'https://ci.example/1' }, actor: 'cli-security' });
    });
  });

  test('certify --reject --json prints the API response', async () => {
    const repository = uniqueRepository('cli');
    const digest = await pushImage(server, repository);
    const result = await runCliWith(['certify', `${repository}@${digest}`, '--role', 'qa', '--reject', '--comment', 'crashes', '--json'], qa);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { state: string }).state, 'rejected');
  });

  test('certify takes the URL from --url', async () => {
    const repository = uniqueRepository('cli');
    const digest = await pushImage(server, repository);
    const { PORTCULLIS_URL: url, ...credentials } = security;
    const result = await runCliWith(['certify', `${repository}@${digest}`, '--role', 'security', '--approve', '--url', url as string], credentials);
    assert.equal(result.code, 0, result.stderr);
  });

  test('certify exits 1 with the API message for a role the user lacks', async () => {
    const repository = uniqueRepository('cli');
    const digest = await pushImage(server, repository);
    const result = await runCliWith(['certify', `${repository}@${digest}`, '--role', 'qa', '--approve'], security);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /lacks certify:qa.*\(HTTP 403 FORBIDDEN\)/);
  });

  test('certify exits 1 for a tag in place of a digest', async () => {
    const result = await runCliWith(['certify', 'cli/app:latest', '--role', 'security', '--approve'], security);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /expected <repository>@<digest>/);
  });

  test('certify exits 1 without --approve or --reject', async () => {
    const result = await runCliWith(['certify', `cli/app@sha256:${'0'.repeat(64)}`, '--role', 'security'], security);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /give --approve or --reject/);
  });

  test('certify exits 1 for evidence that is not a JSON object', async () => {
    const result = await runCliWith(['certify', `cli/app@sha256:${'0'.repeat(64)}`, '--role', 'security', '--approve', '--evidence', '[1]'], security);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--evidence/);
  });

  test('certify exits 1 without credentials', async () => {
    const result = await runCliWith(['certify', `cli/app@sha256:${'0'.repeat(64)}`, '--role', 'security', '--approve'], { PORTCULLIS_URL: server.url });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /set PORTCULLIS_USERNAME and PORTCULLIS_PASSWORD/);
  });

  test('certify exits 1 for a wrong password', async () => {
    const result = await runCliWith(['certify', `cli/app@sha256:${'0'.repeat(64)}`, '--role', 'security', '--approve'], { ...security, PORTCULLIS_PASSWORD: 'wrong-password' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /login as cli-security failed/);
  });

  test('certify exits 1 when no gateway listens', async () => {
    const result = await runCliWith(['certify', `cli/app@sha256:${'0'.repeat(64)}`, '--role', 'security', '--approve'], { ...security, PORTCULLIS_URL: `http://127.0.0.1:${await closedPort()}` });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot reach the gateway/);
  });

  test('status by tag prints the digest and state', async () => {
    const repository = uniqueRepository('cli');
    const digest = await pushImage(server, repository, 'v1');
    await decideOk(server, reviewers.it, { repository, digest, role: 'it', comment: 'fine' });
    const result = await runCliWith(['status', `${repository}:v1`], security);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^digest: +${digest}$`, 'm'));
    assert.match(result.stdout, /^state: +pending$/m);
    assert.match(result.stdout, /^missing: +security, qa$/m);
    // pushImage records a clean scan, so Security could approve it.
    assert.match(result.stdout, /^scan: +clean$/m);
  });

  test('status by digest --json prints the API response', async () => {
    const repository = uniqueRepository('cli');
    const digest = await pushImage(server, repository);
    await approveAll(server, reviewers, repository, digest);
    const result = await runCliWith(['status', `${repository}@${digest}`, '--json'], security);
    assert.equal((JSON.parse(result.stdout) as { state: string }).state, 'certified');
  });

  test('status exits 1 for an unknown tag', async () => {
    const repository = uniqueRepository('cli');
    await pushImage(server, repository, 'v1');
    const result = await runCliWith(['status', `${repository}:v2`], security);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /not found.*\(HTTP 404 NOT_FOUND\)/);
  });

  test('revoke exits 0 and prints revoked', async () => {
    const repository = uniqueRepository('cli');
    const digest = await pushImage(server, repository);
    await approveAll(server, reviewers, repository, digest);
    const result = await runCliWith(['revoke', `${repository}@${digest}`, '--reason', 'CVE in openssl'], security);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^state: revoked$/m);
  });

  test('revoke exits 1 without --reason', async () => {
    const result = await runCliWith(['revoke', `cli/app@sha256:${'0'.repeat(64)}`], security);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--reason/);
  });
});
