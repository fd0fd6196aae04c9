import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_SCOPES, formatScope, hasRegistryHostPrefix, isGrantableName, parseScope, parseScopes, type AccessEntry } from '../../src/auth/scopes.js';

describe('parseScope', () => {
  const accepted: { scope: string; entry: AccessEntry }[] = [
    { scope: 'repository:app:pull', entry: { type: 'repository', name: 'app', actions: ['pull'] } },
    { scope: 'repository:team-a/app:pull,push', entry: { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] } },
    { scope: 'repository:team-a/app:push,pull', entry: { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] } },
    { scope: 'repository:team-a/app:delete', entry: { type: 'repository', name: 'team-a/app', actions: ['delete'] } },
    { scope: 'repository:team-a/app:*', entry: { type: 'repository', name: 'team-a/app', actions: ['*'] } },
    { scope: 'repository:a/b/c/d:pull,pull', entry: { type: 'repository', name: 'a/b/c/d', actions: ['pull'] } },
    { scope: 'repository:team-a/app:pull,frobnicate', entry: { type: 'repository', name: 'team-a/app', actions: ['pull'] } },
    { scope: 'repository:my.app:pull', entry: { type: 'repository', name: 'my.app', actions: ['pull'] } },
    { scope: 'repository:my.team/app:pull', entry: { type: 'repository', name: 'my.team/app', actions: ['pull'] } },
    { scope: 'repository:registry.example.com/team-a/app:pull', entry: { type: 'repository', name: 'registry.example.com/team-a/app', actions: ['pull'] } },
    { scope: 'repository:team_a/app__x/v1.2:pull', entry: { type: 'repository', name: 'team_a/app__x/v1.2', actions: ['pull'] } },
    { scope: 'repository(plugin):team-a/plugin:pull', entry: { type: 'repository', name: 'team-a/plugin', actions: ['pull'] } },
    { scope: 'registry:catalog:*', entry: { type: 'registry', name: 'catalog', actions: ['*'] } },
  ];
  for (const { scope, entry } of accepted) {
    test(`accepts ${scope}`, () => {
      assert.deepEqual(parseScope(scope), entry);
    });
  }

  const dropped: { scope: string; why: string }[] = [
    { scope: 'repository:team-a/../team-b/app:pull', why: 'a ".." component' },
    { scope: 'repository:../etc/passwd:pull', why: 'a leading ".." component' },
    { scope: 'repository:team-a%2Fapp:pull', why: 'an encoded slash' },
    { scope: 'repository:team-a%2fapp:pull', why: 'a lowercase encoded slash' },
    { scope: 'repository:Team-A/app:pull', why: 'uppercase letters' },
    { scope: 'repository:docker.io/library/nginx:pull', why: 'another registry host' },
    { scope: 'repository:ghcr.io/team-a/app:pull', why: 'a public registry host' },
    { scope: 'repository:eu.gcr.io/project/app:pull', why: 'a subdomain of gcr.io' },
    { scope: 'repository:localhost:5000/app:pull', why: 'a host with a port' },
    { scope: 'repository:localhost/app:pull', why: 'localhost as host' },
    { scope: 'repository:/app:pull', why: 'an empty first component' },
    { scope: 'repository:team-a//app:pull', why: 'an empty component' },
    { scope: 'repository:team-a/app/:pull', why: 'a trailing slash' },
    { scope: 'repository:team-a/app:', why: 'no action' },
    { scope: 'repository:team-a/app:frobnicate', why: 'only unknown actions' },
    { scope: 'repository:team-a/app:PULL', why: 'an uppercase action' },
    { scope: 'repository:team-a/app', why: 'no actions part' },
    { scope: 'repository::pull', why: 'an empty name' },
    { scope: `repository:${'a'.repeat(256)}:pull`, why: 'a name over 255 characters' },
    { scope: 'registry:catalog:pull', why: 'a catalog action other than "*"' },
    { scope: 'registry:other:*', why: 'a registry resource other than catalog' },
    { scope: 'namespace:team-a:pull', why: 'an unknown resource type' },
    { scope: 'Repository:team-a/app:pull', why: 'an uppercase resource type' },
    { scope: '', why: 'an empty string' },
  ];
  for (const { scope, why } of dropped) {
    test(`drops a scope with ${why}`, () => {
      assert.equal(parseScope(scope), undefined);
    });
  }
});

describe('parseScopes', () => {
  test('returns nothing without a scope', () => {
    assert.deepEqual(parseScopes(undefined), []);
    assert.deepEqual(parseScopes(''), []);
    assert.deepEqual(parseScopes([]), []);
  });

  test('splits one value on spaces', () => {
    assert.deepEqual(parseScopes('repository:a/b:pull  repository:c/d:push registry:catalog:*'), [
      { type: 'repository', name: 'a/b', actions: ['pull'] },
      { type: 'repository', name: 'c/d', actions: ['push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  test('reads repeated scope parameters', () => {
    assert.deepEqual(parseScopes(['repository:base/alpine:pull', 'repository:team-a/app:pull,push']), [
      { type: 'repository', name: 'base/alpine', actions: ['pull'] },
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
    ]);
  });

  test('merges scopes on one resource', () => {
    assert.deepEqual(parseScopes(['repository:team-a/app:push', 'repository:team-a/app:pull repository(plugin):team-a/app:delete']), [
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] },
    ]);
  });

  test('keeps valid scopes next to dropped ones', () => {
    assert.deepEqual(parseScopes('repository:docker.io/library/nginx:pull repository:team-a/app:pull repository:team-a%2Fapp:push'), [
      { type: 'repository', name: 'team-a/app', actions: ['pull'] },
    ]);
  });

  test(`keeps at most ${MAX_SCOPES} resources`, () => {
    const scopes = Array.from({ length: MAX_SCOPES + 5 }, (_, index) => `repository:team-a/app-${index}:pull`);

    const entries = parseScopes(scopes.join(' '));
    assert.equal(entries.length, MAX_SCOPES);
    assert.equal(entries[0]?.name, 'team-a/app-0');
  });
});

describe('repository names', () => {
  const names: { name: string; grantable: boolean; hostPrefix: boolean }[] = [
    { name: 'app', grantable: true, hostPrefix: false },
    { name: 'my.app', grantable: true, hostPrefix: false },
    { name: 'team-a/app', grantable: true, hostPrefix: false },
    { name: 'library/nginx', grantable: true, hostPrefix: false },
    { name: 'team-a/my.app', grantable: true, hostPrefix: false },
    { name: 'my.team/app', grantable: true, hostPrefix: false },
    { name: 'registry.example.com/app', grantable: true, hostPrefix: false },
    { name: 'docker.io', grantable: true, hostPrefix: false },
    { name: 'docker.io/library/nginx', grantable: false, hostPrefix: true },
    { name: 'quay.io/team/app', grantable: false, hostPrefix: true },
    { name: 'x.gcr.io/y', grantable: false, hostPrefix: true },
    { name: 'localhost/app', grantable: false, hostPrefix: true },
    { name: 'localhost:5000/app', grantable: false, hostPrefix: true },
    { name: 'localhost', grantable: true, hostPrefix: false },
  ];
  for (const { name, grantable, hostPrefix } of names) {
    test(`${name} is ${grantable ? '' : 'not '}grantable`, () => {
      assert.equal(isGrantableName(name), grantable);
      assert.equal(hasRegistryHostPrefix(name), hostPrefix);
    });
  }
});

describe('formatScope', () => {
  test('returns the scope that parses back to the entry', () => {
    const entry: AccessEntry = { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] };

    assert.equal(formatScope(entry), 'repository:team-a/app:pull,push');
    assert.deepEqual(parseScope(formatScope(entry)), entry);
  });
});
