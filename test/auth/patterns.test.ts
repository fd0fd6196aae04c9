import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidPatternError, isValidPattern, matchesPattern, validatePattern } from '../../src/auth/patterns.js';

describe('matchesPattern', () => {
  const cases: { pattern: string; name: string; matches: boolean }[] = [
    { pattern: 'team-a/app', name: 'team-a/app', matches: true },
    { pattern: 'team-a/app', name: 'team-a/app2', matches: false },
    { pattern: 'team-a/app', name: 'team-a', matches: false },
    { pattern: 'team-a/app', name: 'team-a/app/cache', matches: false },

    { pattern: 'team-a/*', name: 'team-a/app', matches: true },
    { pattern: 'team-a/*', name: 'team-a/other.app', matches: true },
    { pattern: 'team-a/*', name: 'team-a', matches: false },
    { pattern: 'team-a/*', name: 'team-a/app/cache', matches: false },
    { pattern: 'team-a/*', name: 'team-b/app', matches: false },
    { pattern: 'team-a/*', name: 'team-ab/app', matches: false },

    { pattern: '*/app', name: 'team-a/app', matches: true },
    { pattern: '*/app', name: 'team-a/other', matches: false },
    { pattern: 'team-a/*/cache', name: 'team-a/app/cache', matches: true },
    { pattern: 'team-a/*/cache', name: 'team-a/app/x/cache', matches: false },

    { pattern: 'base/**', name: 'base/alpine', matches: true },
    { pattern: 'base/**', name: 'base/alpine/3', matches: true },
    { pattern: 'base/**', name: 'base/a/b/c/d', matches: true },
    { pattern: 'base/**', name: 'base', matches: false },
    { pattern: 'base/**', name: 'baseline/alpine', matches: false },
    { pattern: 'team-a/*/**', name: 'team-a/app/cache', matches: true },
    { pattern: 'team-a/*/**', name: 'team-a/app', matches: false },

    { pattern: '*', name: 'app', matches: true },
    { pattern: '*', name: 'team-a/app', matches: false },
    { pattern: '**', name: 'app', matches: true },
    { pattern: '**', name: 'team-a/app/cache', matches: true },

    { pattern: '**', name: 'docker.io/library/nginx', matches: false },
    { pattern: '**', name: 'my.team/app', matches: true },
    { pattern: 'my.team/*', name: 'my.team/app', matches: true },
    { pattern: '**', name: 'Team-A/app', matches: false },
    { pattern: '**', name: 'team-a/../team-b', matches: false },
    { pattern: 'team-a/*', name: 'team-a/%2e%2e', matches: false },
    { pattern: 'team-*', name: 'team-a', matches: false },
    { pattern: '**/app', name: 'team-a/app', matches: false },
  ];
  for (const { pattern, name, matches } of cases) {
    test(`${pattern} ${matches ? 'matches' : 'does not match'} ${name}`, () => {
      assert.equal(matchesPattern(pattern, name), matches);
    });
  }
});

describe('validatePattern', () => {
  const valid = ['app', 'team-a/app', 'team-a/*', 'base/**', '*', '**', '*/app', 'team_a/app__x/v1.2', 'my.app', 'my.team/**', 'registry.example.com/*', '*/*/**'];
  for (const pattern of valid) {
    test(`accepts ${pattern}`, () => {
      assert.equal(validatePattern(pattern), pattern);
      assert.equal(isValidPattern(pattern), true);
    });
  }

  const invalid: { pattern: string; problem: RegExp }[] = [
    { pattern: '', problem: /empty/ },
    { pattern: 'a'.repeat(256), problem: /longer than 255/ },
    { pattern: 'team-*/app', problem: /whole component/ },
    { pattern: 'team-a/app*', problem: /whole component/ },
    { pattern: '***', problem: /whole component/ },
    { pattern: '**/app', problem: /only as the last component/ },
    { pattern: 'base/**/cache', problem: /only as the last component/ },
    { pattern: 'Team-A/*', problem: /lowercase/ },
    { pattern: 'team-a/../*', problem: /lowercase/ },
    { pattern: 'team-a//app', problem: /lowercase/ },
    { pattern: 'team-a/', problem: /lowercase/ },
    { pattern: 'team-a%2F*', problem: /whole component/ },
    { pattern: 'docker.io/**', problem: /registry host/ },
    { pattern: 'ghcr.io/team-a/*', problem: /registry host/ },
    { pattern: 'eu.gcr.io/*', problem: /registry host/ },
    { pattern: 'localhost/*', problem: /registry host/ },
    { pattern: 'localhost:5000/*', problem: /lowercase/ },
  ];
  for (const { pattern, problem } of invalid) {
    test(`rejects ${JSON.stringify(pattern.length > 40 ? `${pattern.slice(0, 10)}…` : pattern)}`, () => {
      assert.equal(isValidPattern(pattern), false);
      assert.throws(
        () => validatePattern(pattern),
        (error: unknown) => {
          assert.ok(error instanceof InvalidPatternError);
          assert.match(error.message, problem);
          return true;
        },
      );
    });
  }
});
