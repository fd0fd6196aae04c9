import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { Knex } from 'knex';
import type { RegistryEvent, RegistryEventSink } from '../../src/audit/registry-events.js';
import { AccountConflictError, AccountNotFoundError, AccountService, InvalidAccountInputError, type Actor } from '../../src/auth/accounts.js';
import { IdentityStore } from '../../src/auth/identity-store.js';
import { ANONYMOUS, type RequestContext } from '../../src/context.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const PASSWORD = 'correct-horse-battery';

/** Returns an event sink that keeps every event and whether it was recorded inside a transaction. */
function recordingSink(): RegistryEventSink & { events: Array<{ event: RegistryEvent; inTransaction: boolean }> } {
  const events: Array<{ event: RegistryEvent; inTransaction: boolean }> = [];
  return {
    events,
    record: async (_context, event, transaction: Knex.Transaction | null) => {
      events.push({ event, inTransaction: transaction !== null });
    },
  };
}

function testActor(): Actor {
  const context: RequestContext = { requestId: 'test', identity: ANONYMOUS, principal: null, clientAddress: '127.0.0.1', userAgent: 'test', logger: pino({ level: 'silent' }) };
  return { context, name: 'tester' };
}

/** Asserts that a promise rejects with InvalidAccountInputError naming the field. */
async function assertInvalidField(promise: Promise<unknown>, field: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof InvalidAccountInputError, `expected InvalidAccountInputError, got ${String(error)}`);
    assert.ok(
      error.problems.some((problem) => problem.field === field),
      `expected a problem with ${field}, got ${JSON.stringify(error.problems)}`,
    );
    return true;
  });
}

function isConflict(reason: string) {
  return (error: unknown) => error instanceof AccountConflictError && error.reason === reason;
}

describe('AccountService', () => {
  let database: TestDatabase;
  let accounts: AccountService;
  let store: IdentityStore;
  let sink: ReturnType<typeof recordingSink>;
  const actor = testActor();

  before(async () => {
    database = await createTestDatabase();
    sink = recordingSink();
    accounts = new AccountService({ db: database.db, events: sink });
    store = new IdentityStore(database.db);
  });
  after(() => database.drop());

  describe('users', () => {
    test('createUser stores a hash, not the password', async () => {
      await accounts.createUser(actor, { username: 'hash-check', password: PASSWORD });
      const row = await database.db('users').where({ username: 'hash-check' }).first('password_hash');
      assert.notEqual(row.password_hash, PASSWORD);
      assert.match(row.password_hash, /^scrypt\$/);
    });

    test('createUser password authenticates', async () => {
      await accounts.createUser(actor, { username: 'login-check', password: PASSWORD });
      const principal = await store.authenticate('login-check', PASSWORD);
      assert.equal(principal?.subject, 'login-check');
    });

    test('createUser adds the groups', async () => {
      const user = await accounts.createUser(actor, { username: 'grouped', password: PASSWORD, groups: ['qa', 'it', 'qa'] });
      assert.deepEqual(user.groups, ['it', 'qa']);
    });

    test('createUser returns no hash', async () => {
      const user = await accounts.createUser(actor, { username: 'view-check', password: PASSWORD });
      assert.doesNotMatch(JSON.stringify(user), /scrypt|password/i);
    });

    test('listUsers returns no hash', async () => {
      const users = await accounts.listUsers();
      assert.doesNotMatch(JSON.stringify(users), /scrypt/);
    });

    test('createUser records the change in its transaction', async () => {
      await accounts.createUser(actor, { username: 'audited', password: PASSWORD });
      const recorded = sink.events.find(({ event }) => event.action === 'account.change' && event.target === 'user:audited');
      assert.deepEqual(recorded?.event, { action: 'account.change', change: 'user.create', target: 'user:audited', by: 'tester' });
      assert.equal(recorded?.inTransaction, true);
    });

    for (const [name, username] of [
      ['uppercase', 'Alice'],
      ['leading digit', '1alice'],
      ['robot prefix', 'robot$alice'],
      ['reserved name', 'anonymous'],
      ['empty', ''],
      ['65 characters', `a${'b'.repeat(64)}`],
    ] as const) {
      test(`createUser rejects a username with ${name}`, async () => {
        await assertInvalidField(accounts.createUser(actor, { username, password: PASSWORD }), 'username');
      });
    }

    test('createUser rejects an 11-character password', async () => {
      await assertInvalidField(accounts.createUser(actor, { username: 'short-password', password: 'a'.repeat(11) }), 'password');
    });

    test('createUser never puts the password in the error', async () => {
      await assert.rejects(accounts.createUser(actor, { username: 'short-secret', password: 'hunter2' }), (error: Error) => !error.message.includes('hunter2'));
    });

    test('createUser rejects a duplicate username', async () => {
      await accounts.createUser(actor, { username: 'twice', password: PASSWORD });
      await assert.rejects(accounts.createUser(actor, { username: 'twice', password: PASSWORD }), isConflict('exists'));
    });

    test('createUser rejects an unknown group', async () => {
      await assertInvalidField(accounts.createUser(actor, { username: 'unknown-group', password: PASSWORD, groups: ['nope'] }), 'groups');
    });

    test('createUser with an unknown group stores no user', async () => {
      await accounts.createUser(actor, { username: 'rolled-back', password: PASSWORD, groups: ['nope'] }).catch(() => undefined);
      const row = await database.db('users').where({ username: 'rolled-back' }).first('id');
      assert.equal(row, undefined);
    });

    test('getUser throws not found for an unknown user', async () => {
      await assert.rejects(accounts.getUser('ghost'), AccountNotFoundError);
    });

    test('updateUser disables a user', async () => {
      await accounts.createUser(actor, { username: 'to-disable', password: PASSWORD });
      const user = await accounts.updateUser(actor, 'to-disable', { disabled: true });
      assert.equal(user.disabled, true);
    });

    test('disabled user cannot authenticate', async () => {
      await accounts.createUser(actor, { username: 'disabled-login', password: PASSWORD });
      await accounts.disableUser(actor, 'disabled-login');
      assert.equal(await store.authenticate('disabled-login', PASSWORD), null);
    });

    test('enabled user authenticates again', async () => {
      await accounts.createUser(actor, { username: 're-enabled', password: PASSWORD });
      await accounts.disableUser(actor, 're-enabled');
      await accounts.updateUser(actor, 're-enabled', { disabled: false });
      assert.notEqual(await store.authenticate('re-enabled', PASSWORD), null);
    });

    test('updateUser replaces the groups', async () => {
      await accounts.createUser(actor, { username: 'regrouped', password: PASSWORD, groups: ['it', 'qa'] });
      const user = await accounts.updateUser(actor, 'regrouped', { groups: ['security', 'qa'] });
      assert.deepEqual(user.groups, ['qa', 'security']);
    });

    test('updateUser throws not found for an unknown user', async () => {
      await assert.rejects(accounts.updateUser(actor, 'ghost', { disabled: true }), AccountNotFoundError);
    });

    test('changePassword makes the new password work', async () => {
      await accounts.createUser(actor, { username: 'new-password', password: PASSWORD });
      await accounts.changePassword(actor, 'new-password', 'another-long-password');
      assert.notEqual(await store.authenticate('new-password', 'another-long-password'), null);
    });

    test('changePassword makes the old password fail', async () => {
      await accounts.createUser(actor, { username: 'old-password', password: PASSWORD });
      await accounts.changePassword(actor, 'old-password', 'another-long-password');
      assert.equal(await store.authenticate('old-password', PASSWORD), null);
    });

    test('changePassword moves credentialsChangedAt forward', async () => {
      const created = await accounts.createUser(actor, { username: 'credentials-moved', password: PASSWORD });
      await accounts.changePassword(actor, 'credentials-moved', 'another-long-password');
      const changed = await accounts.getUser('credentials-moved');
      assert.ok(changed.credentialsChangedAt > created.credentialsChangedAt);
    });

    test('changePassword rejects a short password', async () => {
      await assertInvalidField(accounts.changePassword(actor, 'login-check', 'short'), 'password');
    });

    test('changePassword throws not found for an unknown user', async () => {
      await assert.rejects(accounts.changePassword(actor, 'ghost', PASSWORD), AccountNotFoundError);
    });
  });

  describe('robots', () => {
    test('createRobot returns a secret that authenticates', async () => {
      const { secret } = await accounts.createRobot(actor, { name: 'ci' });
      const principal = await store.authenticate('robot$ci', secret);
      assert.equal(principal?.kind, 'robot');
    });

    test('createRobot stores a hash, not the secret', async () => {
      const { secret } = await accounts.createRobot(actor, { name: 'hashed-robot' });
      const row = await database.db('robots').where({ name: 'hashed-robot' }).first('secret_hash');
      assert.doesNotMatch(row.secret_hash, new RegExp(secret));
    });

    test('createRobot records who created it', async () => {
      const { robot } = await accounts.createRobot(actor, { name: 'creator-check' });
      assert.equal(robot.createdBy, 'tester');
    });

    test('createRobot keeps the expiry', async () => {
      const expiresAt = new Date(Date.now() + 86_400_000);
      const { robot } = await accounts.createRobot(actor, { name: 'expiring', expiresAt });
      assert.equal(robot.expiresAt?.getTime(), expiresAt.getTime());
    });

    test('createRobot rejects an expiry in the past', async () => {
      await assertInvalidField(accounts.createRobot(actor, { name: 'expired-at-birth', expiresAt: new Date(Date.now() - 1000) }), 'expiresAt');
    });

    test('createRobot rejects an invalid name', async () => {
      await assertInvalidField(accounts.createRobot(actor, { name: 'Robot!' }), 'name');
    });

    test('createRobot rejects a duplicate name', async () => {
      await accounts.createRobot(actor, { name: 'twin' });
      await assert.rejects(accounts.createRobot(actor, { name: 'twin' }), isConflict('exists'));
    });

    test('revokeRobot marks the robot revoked', async () => {
      await accounts.createRobot(actor, { name: 'to-revoke' });
      const robot = await accounts.revokeRobot(actor, 'to-revoke');
      assert.equal(robot.status, 'revoked');
    });

    test('revoked robot cannot authenticate', async () => {
      const { secret } = await accounts.createRobot(actor, { name: 'revoked-login' });
      await accounts.revokeRobot(actor, 'revoked-login');
      assert.equal(await store.authenticate('robot$revoked-login', secret), null);
    });

    test('revokeRobot twice keeps the first revocation time', async () => {
      await accounts.createRobot(actor, { name: 'revoked-twice' });
      const first = await accounts.revokeRobot(actor, 'revoked-twice');
      const second = await accounts.revokeRobot(actor, 'revoked-twice');
      assert.equal(second.revokedAt?.getTime(), first.revokedAt?.getTime());
    });

    test('revokeRobot throws not found for an unknown robot', async () => {
      await assert.rejects(accounts.revokeRobot(actor, 'ghost'), AccountNotFoundError);
    });

    test('listRobots shows an expired robot as expired', async () => {
      await accounts.createRobot(actor, { name: 'lapsed', expiresAt: new Date(Date.now() + 60_000) });
      await database.db('robots').where({ name: 'lapsed' }).update({ expires_at: new Date(Date.now() - 1000) });
      const robots = await accounts.listRobots();
      assert.equal(robots.find((robot) => robot.name === 'lapsed')?.status, 'expired');
    });

    test('listRobots returns no hash', async () => {
      const robots = await accounts.listRobots();
      assert.doesNotMatch(JSON.stringify(robots), /scrypt/);
    });
  });

  describe('groups', () => {
    test('createGroup creates a custom group', async () => {
      const group = await accounts.createGroup(actor, { name: 'team-a', description: 'Team A' });
      assert.equal(group.name, 'team-a');
      assert.equal(group.builtIn, false);
      assert.deepEqual(group.members, []);
    });

    test('createGroup rejects a duplicate name', async () => {
      await assert.rejects(accounts.createGroup(actor, { name: 'qa' }), isConflict('exists'));
    });

    test('createGroup rejects an invalid name', async () => {
      await assertInvalidField(accounts.createGroup(actor, { name: 'Team A' }), 'name');
    });

    test('deleteGroup rejects a built-in group', async () => {
      await assert.rejects(accounts.deleteGroup(actor, 'auditors'), isConflict('built_in'));
    });

    test('deleteGroup removes the group', async () => {
      await accounts.createGroup(actor, { name: 'short-lived' });
      await accounts.deleteGroup(actor, 'short-lived');
      await assert.rejects(accounts.getGroup('short-lived'), AccountNotFoundError);
    });

    test('deleteGroup removes its grants', async () => {
      await accounts.createGroup(actor, { name: 'granted-group' });
      const grant = await accounts.createGrant(actor, { subject: 'group:granted-group', repositories: 'x/**', permissions: ['pull'] });
      await accounts.deleteGroup(actor, 'granted-group');
      await assert.rejects(accounts.getGrant(grant.id), AccountNotFoundError);
    });

    test('deleteGroup throws not found for an unknown group', async () => {
      await assert.rejects(accounts.deleteGroup(actor, 'ghost'), AccountNotFoundError);
    });

    test('addMember adds a user and a robot', async () => {
      await accounts.createGroup(actor, { name: 'mixed' });
      await accounts.createUser(actor, { username: 'member-user', password: PASSWORD });
      await accounts.createRobot(actor, { name: 'member-robot' });
      await accounts.addMember(actor, 'mixed', 'user:member-user');
      await accounts.addMember(actor, 'mixed', 'robot:member-robot');
      const group = await accounts.getGroup('mixed');
      assert.deepEqual(group.members, ['robot:member-robot', 'user:member-user']);
    });

    test('addMember of a member returns false', async () => {
      await accounts.createGroup(actor, { name: 'idempotent' });
      await accounts.addMember(actor, 'idempotent', 'user:login-check');
      assert.equal(await accounts.addMember(actor, 'idempotent', 'user:login-check'), false);
    });

    test('addMember rejects a member without a kind', async () => {
      await assertInvalidField(accounts.addMember(actor, 'qa', 'login-check'), 'member');
    });

    test('addMember throws not found for an unknown user', async () => {
      await assert.rejects(accounts.addMember(actor, 'qa', 'user:ghost'), (error) => error instanceof AccountNotFoundError && error.resource === 'user');
    });

    test('addMember throws not found for an unknown group', async () => {
      await assert.rejects(accounts.addMember(actor, 'ghost', 'user:login-check'), (error) => error instanceof AccountNotFoundError && error.resource === 'group');
    });

    test('removeMember removes the membership', async () => {
      await accounts.createGroup(actor, { name: 'leaving' });
      await accounts.addMember(actor, 'leaving', 'user:login-check');
      await accounts.removeMember(actor, 'leaving', 'user:login-check');
      assert.deepEqual((await accounts.getGroup('leaving')).members, []);
    });

    test('removeMember throws not found for a non-member', async () => {
      await assert.rejects(accounts.removeMember(actor, 'qa', 'user:login-check'), (error) => error instanceof AccountNotFoundError && error.resource === 'member');
    });

    test('group grants reach its members', async () => {
      await accounts.createGroup(actor, { name: 'pullers' });
      await accounts.createGrant(actor, { subject: 'group:pullers', repositories: 'shared/**', permissions: ['pull'] });
      await accounts.createUser(actor, { username: 'puller', password: PASSWORD, groups: ['pullers'] });
      const principal = await store.findPrincipal('puller');
      assert.deepEqual(principal?.grants, [{ pattern: 'shared/**', permissions: ['pull'] }]);
    });
  });

  describe('grants', () => {
    test('createGrant stores the permissions in canonical order', async () => {
      const grant = await accounts.createGrant(actor, { subject: 'user:login-check', repositories: 'team-a/**', permissions: ['push', 'pull', 'push'] });
      assert.deepEqual(grant.permissions, ['pull', 'push']);
    });

    test('createGrant returns the subject and pattern', async () => {
      const grant = await accounts.createGrant(actor, { subject: 'robot:ci', repositories: 'ci/*', permissions: ['push'] });
      assert.equal(grant.subject, 'robot:ci');
      assert.equal(grant.repositories, 'ci/*');
    });

    test('createGrant rejects an invalid pattern', async () => {
      await assertInvalidField(accounts.createGrant(actor, { subject: 'user:login-check', repositories: 'team-*', permissions: ['pull'] }), 'repositories');
    });

    test('createGrant rejects an unknown permission', async () => {
      await assertInvalidField(accounts.createGrant(actor, { subject: 'user:login-check', repositories: 'team-a/**', permissions: ['read'] }), 'permissions');
    });

    test('createGrant rejects a global permission on a narrow pattern', async () => {
      await assertInvalidField(accounts.createGrant(actor, { subject: 'user:login-check', repositories: 'team-a/**', permissions: ['admin'] }), 'permissions');
    });

    test('createGrant rejects no permissions', async () => {
      await assertInvalidField(accounts.createGrant(actor, { subject: 'user:login-check', repositories: 'team-a/**', permissions: [] }), 'permissions');
    });

    test('createGrant rejects a malformed subject', async () => {
      await assertInvalidField(accounts.createGrant(actor, { subject: 'login-check', repositories: 'team-a/**', permissions: ['pull'] }), 'subject');
    });

    test('createGrant rejects an unknown subject', async () => {
      await assertInvalidField(accounts.createGrant(actor, { subject: 'user:ghost', repositories: 'team-a/**', permissions: ['pull'] }), 'subject');
    });

    test('createGrant rejects an identical grant', async () => {
      await accounts.createGrant(actor, { subject: 'user:grouped', repositories: 'dup/**', permissions: ['pull', 'push'] });
      await assert.rejects(accounts.createGrant(actor, { subject: 'user:grouped', repositories: 'dup/**', permissions: ['push', 'pull'] }), isConflict('exists'));
    });

    test('createGrant reaches the principal', async () => {
      await accounts.createUser(actor, { username: 'granted', password: PASSWORD });
      await accounts.createGrant(actor, { subject: 'user:granted', repositories: 'granted/**', permissions: ['pull'] });
      const principal = await store.findPrincipal('granted');
      assert.deepEqual(principal?.grants, [{ pattern: 'granted/**', permissions: ['pull'] }]);
    });

    test('listGrants filters by subject', async () => {
      const grants = await accounts.listGrants({ subject: 'robot:ci' });
      assert.deepEqual(
        grants.map((grant) => grant.subject),
        ['robot:ci'],
      );
    });

    test('listGrants filters by matching repository', async () => {
      const grants = await accounts.listGrants({ repository: 'ci/app' });
      assert.deepEqual(
        grants.map((grant) => grant.repositories),
        ['ci/*'],
      );
    });

    test('listGrants filters by exact pattern', async () => {
      const grants = await accounts.listGrants({ repositories: 'dup/**' });
      assert.equal(grants.length, 1);
    });

    test('listGrants rejects a malformed subject filter', async () => {
      await assertInvalidField(accounts.listGrants({ subject: 'ci' }), 'subject');
    });

    test('deleteGrant removes the grant', async () => {
      const grant = await accounts.createGrant(actor, { subject: 'user:login-check', repositories: 'gone/**', permissions: ['pull'] });
      await accounts.deleteGrant(actor, grant.id);
      await assert.rejects(accounts.getGrant(grant.id), AccountNotFoundError);
    });

    test('deleteGrant throws not found for an unknown id', async () => {
      await assert.rejects(accounts.deleteGrant(actor, 999_999), AccountNotFoundError);
    });
  });
});

describe('AccountService keeps an administrator', () => {
  let database: TestDatabase;
  let accounts: AccountService;
  const actor = testActor();

  before(async () => {
    database = await createTestDatabase();
    accounts = new AccountService({ db: database.db, events: recordingSink() });
    await accounts.createUser(actor, { username: 'root', password: PASSWORD, groups: ['admins'] });
  });
  after(() => database.drop());

  test('disabling the last administrator is a conflict', async () => {
    await assert.rejects(accounts.disableUser(actor, 'root'), isConflict('last_administrator'));
  });

  test('removing the last administrator from admins is a conflict', async () => {
    await assert.rejects(accounts.updateUser(actor, 'root', { groups: [] }), isConflict('last_administrator'));
  });

  test('removing the last admins member is a conflict', async () => {
    await assert.rejects(accounts.removeMember(actor, 'admins', 'user:root'), isConflict('last_administrator'));
  });

  test('deleting the last admin grant is a conflict', async () => {
    await accounts.createUser(actor, { username: 'granted-root', password: PASSWORD });
    const grant = await accounts.createGrant(actor, { subject: 'user:granted-root', repositories: '**', permissions: ['admin'] });
    await accounts.removeMember(actor, 'admins', 'user:root');
    await accounts.disableUser(actor, 'root');
    await assert.rejects(accounts.deleteGrant(actor, grant.id), isConflict('last_administrator'));
    await accounts.updateUser(actor, 'root', { disabled: false });
  });

  test('disabling one of two administrators succeeds', async () => {
    await accounts.createUser(actor, { username: 'second-root', password: PASSWORD, groups: ['admins'] });
    const user = await accounts.disableUser(actor, 'second-root');
    assert.equal(user.disabled, true);
  });

  test('concurrent disabling of the last two administrators leaves one', async () => {
    await database.db('grants').delete();
    await accounts.createUser(actor, { username: 'left', password: PASSWORD, groups: ['admins'] });
    await accounts.createUser(actor, { username: 'right', password: PASSWORD, groups: ['admins'] });
    await accounts.updateUser(actor, 'root', { groups: [] });

    const results = await Promise.allSettled([accounts.disableUser(actor, 'left'), accounts.disableUser(actor, 'right')]);
    assert.deepEqual(results.map((result) => result.status).sort(), ['fulfilled', 'rejected']);
  });
});
