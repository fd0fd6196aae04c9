import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { globalPermissions, grantedActions, grantProblems, repositoryPermissions, type Grant } from '../../src/auth/permissions.js';
import { parseScopes, type AccessEntry } from '../../src/auth/scopes.js';

function repository(name: string, ...actions: string[]): AccessEntry {
  return { type: 'repository', name, actions };
}

const ALL = ['pull', 'push', 'delete', '*'];
const CATALOG: AccessEntry = { type: 'registry', name: 'catalog', actions: ['*'] };

describe('grantedActions', () => {
  test('a robot with push on team-a/* can push to team-a/app but not team-b/app', () => {
    const robot: Grant[] = [{ pattern: 'team-a/*', permissions: ['pull', 'push'] }];

    const granted = grantedActions(robot, [], [repository('team-a/app', 'pull', 'push'), repository('team-b/app', 'pull', 'push')]);
    assert.deepEqual(granted, [repository('team-a/app', 'pull', 'push')]);
  });

  test('team-a/* does not reach deeper repositories', () => {
    const robot: Grant[] = [{ pattern: 'team-a/*', permissions: ['push'] }];

    assert.deepEqual(grantedActions(robot, [], [repository('team-a/app/cache', 'push')]), []);
    assert.deepEqual(grantedActions(robot, [], [repository('team-a', 'push')]), []);
  });

  test('pull only cannot push or delete', () => {
    const reader: Grant[] = [{ pattern: 'base/**', permissions: ['pull'] }];

    const granted = grantedActions(reader, [], [repository('base/alpine', ...ALL)]);
    assert.deepEqual(granted, [repository('base/alpine', 'pull')]);
  });

  test('returns nothing without grants', () => {
    assert.deepEqual(grantedActions([], [], [repository('team-a/app', ...ALL), CATALOG]), []);
  });

  test('returns only what was requested', () => {
    const owner: Grant[] = [{ pattern: 'team-a/**', permissions: ['pull', 'push', 'delete'] }];

    assert.deepEqual(grantedActions(owner, [], [repository('team-a/app', 'pull')]), [repository('team-a/app', 'pull')]);
    assert.deepEqual(grantedActions(owner, [], []), []);
  });

  test('combines the permissions of several grants', () => {
    const grants: Grant[] = [
      { pattern: 'team-a/*', permissions: ['pull'] },
      { pattern: 'team-a/app', permissions: ['push'] },
      { pattern: '**', permissions: ['delete'] },
    ];

    assert.deepEqual(grantedActions(grants, [], [repository('team-a/app', ...ALL)]), [repository('team-a/app', 'pull', 'push', 'delete', '*')]);
    assert.deepEqual(grantedActions(grants, [], [repository('team-a/other', ...ALL)]), [repository('team-a/other', 'pull', 'delete')]);
  });

  test('grants * only with pull, push and delete', () => {
    const partial: Grant[] = [{ pattern: '**', permissions: ['pull', 'push'] }];
    const full: Grant[] = [{ pattern: '**', permissions: ['pull', 'push', 'delete'] }];

    assert.deepEqual(grantedActions(partial, [], [repository('team-a/app', '*')]), []);
    assert.deepEqual(grantedActions(full, [], [repository('team-a/app', '*')]), [repository('team-a/app', '*')]);
  });

  test('pull-uncertified allows pull but is never a token action', () => {
    const reviewer: Grant[] = [{ pattern: '**', permissions: ['pull-uncertified'] }];

    const granted = grantedActions(reviewer, [], [repository('team-a/app', 'pull', 'push', 'pull-uncertified')]);
    assert.deepEqual(granted, [repository('team-a/app', 'pull')]);
  });

  test('admin gets every repository action and the catalog', () => {
    const granted = grantedActions([], ['admins'], [repository('team-a/app', ...ALL), repository('x', 'delete'), CATALOG]);

    assert.deepEqual(granted, [repository('team-a/app', ...ALL), repository('x', 'delete'), CATALOG]);
  });

  test('an admin grant on ** works like the admins group', () => {
    const grants: Grant[] = [{ pattern: '**', permissions: ['admin'] }];

    assert.deepEqual(grantedActions(grants, [], [repository('team-a/app', 'push'), CATALOG]), [repository('team-a/app', 'push'), CATALOG]);
  });

  test('ignores admin on a narrower pattern', () => {
    const grants: Grant[] = [{ pattern: 'team-a/*', permissions: ['admin'] }];

    assert.deepEqual(grantedActions(grants, [], [repository('team-a/app', 'push'), CATALOG]), []);
  });

  test('catalog needs admin', () => {
    const everything: Grant[] = [{ pattern: '**', permissions: ['pull', 'push', 'delete', 'pull-uncertified'] }];

    assert.deepEqual(grantedActions(everything, ['it', 'security', 'qa', 'auditors'], [CATALOG]), []);
  });

  test('certifier groups grant no repository action', () => {
    for (const group of ['it', 'security', 'qa', 'auditors']) {
      assert.deepEqual(grantedActions([], [group], [repository('team-a/app', ...ALL)]), [], group);
    }
  });

  test('drops names no token may carry, even for admin', () => {
    const requested = [repository('docker.io/library/nginx', 'pull'), repository('Team-A/app', 'pull'), repository('a/../b', 'pull')];

    assert.deepEqual(grantedActions([], ['admins'], requested), []);
  });

  test('ignores unknown permissions and invalid patterns', () => {
    const grants: Grant[] = [
      { pattern: 'team-a/*', permissions: ['write', 'PULL'] },
      { pattern: 'team-*', permissions: ['pull'] },
    ];

    assert.deepEqual(grantedActions(grants, [], [repository('team-a/app', 'pull', 'push'), repository('team-b', 'pull')]), []);
  });

  test('works on parsed scopes', () => {
    const robot: Grant[] = [{ pattern: 'team-a/*', permissions: ['pull', 'push'] }];
    const requested = parseScopes('repository:team-a/app:pull,push repository:base/alpine:pull repository:docker.io/team-a/app:push');

    assert.deepEqual(grantedActions(robot, [], requested), [repository('team-a/app', 'pull', 'push')]);
  });
});

describe('globalPermissions', () => {
  const groups: { group: string; permission: string }[] = [
    { group: 'admins', permission: 'admin' },
    { group: 'it', permission: 'certify:it' },
    { group: 'security', permission: 'certify:security' },
    { group: 'qa', permission: 'certify:qa' },
    { group: 'auditors', permission: 'audit:read' },
  ];
  for (const { group, permission } of groups) {
    test(`group ${group} implies ${permission} only`, () => {
      assert.deepEqual([...globalPermissions([], [group])], [permission]);
    });
  }

  test('admin implies no certification or audit permission', () => {
    assert.deepEqual([...globalPermissions([], ['admins'])], ['admin']);
  });

  test('combines groups and ** grants', () => {
    const grants: Grant[] = [
      { pattern: '**', permissions: ['audit:read', 'pull'] },
      { pattern: 'team-a/*', permissions: ['certify:qa'] },
    ];

    const permissions = globalPermissions(grants, ['it', 'team-a-developers']);
    assert.deepEqual([...permissions].sort(), ['audit:read', 'certify:it']);
  });
});

describe('repositoryPermissions', () => {
  test('includes pull-uncertified for the pull gate', () => {
    const grants: Grant[] = [{ pattern: 'team-a/*', permissions: ['pull-uncertified'] }];

    assert.deepEqual([...repositoryPermissions(grants, [], 'team-a/app')].sort(), ['pull', 'pull-uncertified']);
    assert.deepEqual([...repositoryPermissions(grants, [], 'team-b/app')], []);
  });

  test('gives admin every repository permission', () => {
    assert.deepEqual([...repositoryPermissions([], ['admins'], 'any/repo')].sort(), ['delete', 'import', 'pull', 'pull-uncertified', 'push']);
  });
});

describe('grantProblems', () => {
  test('accepts a valid grant', () => {
    assert.deepEqual(grantProblems({ pattern: 'team-a/*', permissions: ['pull', 'push', 'pull-uncertified'] }), []);
    assert.deepEqual(grantProblems({ pattern: '**', permissions: ['admin', 'audit:read', 'delete'] }), []);
  });

  test('names an invalid pattern', () => {
    const [problem] = grantProblems({ pattern: 'team-*', permissions: ['pull'] });

    assert.match(problem ?? '', /invalid pattern "team-\*"/);
  });

  test('names an unknown permission', () => {
    const [problem] = grantProblems({ pattern: 'team-a/*', permissions: ['write'] });

    assert.match(problem ?? '', /unknown permission "write"/);
  });

  test('names a global permission on a narrow pattern', () => {
    const [problem] = grantProblems({ pattern: 'team-a/*', permissions: ['admin'] });

    assert.match(problem ?? '', /"admin" needs the pattern "\*\*"/);
  });
});
