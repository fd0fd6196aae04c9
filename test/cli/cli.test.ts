import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { IdentityStore } from '../../src/auth/identity-store.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/** Runs the CLI with DATABASE_URL set, writes `input` to its standard input, and collects its output. */
function runCliOn(databaseUrl: string, args: string[], input = ''): Promise<CliResult> {
  return runCli(args, { env: { DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }, input });
}

describe('portcullis CLI account commands', () => {
  let database: TestDatabase;
  let store: IdentityStore;

  before(async () => {
    database = await createTestDatabase();
    store = new IdentityStore(database.db);
  });
  after(() => database.drop());

  describe('user add', () => {
    let result: CliResult;
    before(async () => {
      result = await runCliOn(database.url, ['user', 'add', 'alice', '--group', 'admins', 'qa', '--password-stdin'], 'correct-horse-battery\n');
    });

    test('exits with status 0', () => {
      assert.equal(result.code, 0, result.stderr);
    });

    test('stores the user', async () => {
      const row = await database.db('users').where({ username: 'alice' }).first('id');
      assert.notEqual(row, undefined);
    });

    test('stores a password that authenticates', async () => {
      const principal = await store.authenticate('alice', 'correct-horse-battery');
      assert.equal(principal?.subject, 'alice');
    });

    test('adds the groups', async () => {
      const principal = await store.findPrincipal('alice');
      assert.deepEqual(principal?.groups.sort(), ['admins', 'qa']);
    });

    test('records the change on the audit trail as a system actor', async () => {
      const row: { actor_kind: string; actor_subject: string; details: { change: string } } | undefined = await database.db('audit_events').where({ action: 'account.change' }).whereRaw("details->>'target' = 'user:alice'").first('actor_kind', 'actor_subject', 'details');
      assert.deepEqual([row?.actor_kind, row?.actor_subject.startsWith('cli:'), row?.details.change], ['system', true, 'user.create']);
    });

    test('drops only the final line break of the password', async () => {
      await runCliOn(database.url, ['user', 'add', 'spaced', '--password-stdin'], '  spaces count too  \n');
      assert.notEqual(await store.authenticate('spaced', '  spaces count too  '), null);
    });

    test('exits with status 1 for a short password', async () => {
      const short = await runCliOn(database.url, ['user', 'add', 'bob', '--password-stdin'], 'short\n');
      assert.equal(short.code, 1);
    });

    test('names the broken rule for a short password', async () => {
      const short = await runCliOn(database.url, ['user', 'add', 'bob', '--password-stdin'], 'short\n');
      assert.match(short.stderr, /password: must be at least 12 characters long/);
    });

    test('exits with status 1 for a duplicate user', async () => {
      const duplicate = await runCliOn(database.url, ['user', 'add', 'alice', '--password-stdin'], 'correct-horse-battery\n');
      assert.equal(duplicate.code, 1);
    });

    test('rejects a password option', async () => {
      const rejected = await runCliOn(database.url, ['user', 'add', 'carol', '--password', 'correct-horse-battery']);
      assert.notEqual(rejected.code, 0);
    });

    test('exits with status 1 without a terminal or --password-stdin', async () => {
      const noTerminal = await runCliOn(database.url, ['user', 'add', 'dave']);
      assert.equal(noTerminal.code, 1);
    });
  });

  test('user list prints the users', async () => {
    const result = await runCliOn(database.url, ['user', 'list']);
    assert.match(result.stdout, /^alice\s+enabled\s+\S+\s+admins,qa$/m);
  });

  test('user list --json prints JSON without hashes', async () => {
    const result = await runCliOn(database.url, ['user', 'list', '--json']);
    const body = JSON.parse(result.stdout) as { users: Array<Record<string, unknown>> };
    assert.equal(
      body.users.some((user) => 'password_hash' in user || 'passwordHash' in user),
      false,
    );
  });

  test('user passwd sets the password', async () => {
    await runCliOn(database.url, ['user', 'add', 'erin', '--password-stdin'], 'correct-horse-battery\n');
    await runCliOn(database.url, ['user', 'passwd', 'erin', '--password-stdin'], 'another-long-password\n');
    assert.notEqual(await store.authenticate('erin', 'another-long-password'), null);
  });

  test('user disable stops authentication', async () => {
    await runCliOn(database.url, ['user', 'add', 'frank', '--password-stdin'], 'correct-horse-battery\n');
    await runCliOn(database.url, ['user', 'disable', 'frank']);
    assert.equal(await store.authenticate('frank', 'correct-horse-battery'), null);
  });

  test('user disable of the last administrator exits with status 1', async () => {
    const result = await runCliOn(database.url, ['user', 'disable', 'alice']);
    assert.equal(result.code, 1);
  });

  test('user passwd of an unknown user exits with status 1', async () => {
    const result = await runCliOn(database.url, ['user', 'passwd', 'ghost', '--password-stdin'], 'another-long-password\n');
    assert.equal(result.code, 1);
  });

  describe('robot add', () => {
    let result: CliResult;
    before(async () => {
      result = await runCliOn(database.url, ['robot', 'add', 'ci', '--expires', '2099-01-01T00:00:00Z']);
    });

    test('prints only the secret on standard output', () => {
      assert.match(result.stdout, /^[A-Za-z0-9_-]{43}\n$/);
    });

    test('prints a secret that authenticates', async () => {
      const principal = await store.authenticate('robot$ci', result.stdout.trim());
      assert.equal(principal?.subject, 'robot$ci');
    });

    test('stores the expiry', async () => {
      const row = await database.db('robots').where({ name: 'ci' }).first('expires_at');
      assert.equal((row.expires_at as Date).toISOString(), '2099-01-01T00:00:00.000Z');
    });

    test('exits with status 1 for an expiry that is no date', async () => {
      const invalid = await runCliOn(database.url, ['robot', 'add', 'cd', '--expires', 'tomorrow']);
      assert.equal(invalid.code, 1);
    });
  });

  test('robot revoke stops authentication', async () => {
    const created = await runCliOn(database.url, ['robot', 'add', 'deployer']);
    await runCliOn(database.url, ['robot', 'revoke', 'deployer']);
    assert.equal(await store.authenticate('robot$deployer', created.stdout.trim()), null);
  });

  test('grant stores the grant', async () => {
    await runCliOn(database.url, ['grant', 'robot:ci', 'team-a/**', 'push', 'pull']);
    const principal = await store.findPrincipal('robot$ci');
    assert.deepEqual(principal?.grants, [{ pattern: 'team-a/**', permissions: ['pull', 'push'] }]);
  });

  test('grant with an unknown permission exits with status 1', async () => {
    const result = await runCliOn(database.url, ['grant', 'robot:ci', 'team-a/**', 'read']);
    assert.equal(result.code, 1);
  });
});
