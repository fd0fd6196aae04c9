import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRegistryError } from '../../src/errors.js';
import { isValidName, isValidTag, looksLikeDigest, parseDigest, parseManifestReference, validateName } from '../../src/registry/reference.js';

const SHA256_HEX = 'a'.repeat(64);
const SHA512_HEX = 'b'.repeat(128);

describe('repository name grammar', () => {
  const VALID = ['a', '0', 'library/ubuntu', 'a/b/c/d', 'my-app', 'my--app', 'my_app', 'my__app', 'my.app', 'a1/b2.c3', `${'a'.repeat(255)}`, 'registry-1/team_x/app.v2'];
  const INVALID = ['', 'A', 'Library/app', 'a..b', 'a/', '/a', 'a//b', 'a/../b', '..', '-a', 'a-', '.a', 'a.', '_a', 'a___b', 'a_.b', 'my%2Fapp', 'a b', 'a:b', 'ä', `${'a'.repeat(256)}`];

  for (const name of VALID) {
    test(`accepts ${JSON.stringify(name.length > 40 ? `${name.slice(0, 10)}… (${name.length} chars)` : name)}`, () => {
      assert.equal(isValidName(name), true);
    });
  }

  for (const name of INVALID) {
    test(`rejects ${JSON.stringify(name.length > 40 ? `${name.slice(0, 10)}… (${name.length} chars)` : name)}`, () => {
      assert.equal(isValidName(name), false);
    });
  }

  test('validateName returns a valid name', () => {
    assert.equal(validateName('library/app'), 'library/app');
  });

  test('validateName throws NAME_INVALID', () => {
    assert.throws(() => validateName('Library'), (error: unknown) => isRegistryError(error, 'NAME_INVALID'));
  });
});

describe('tag grammar', () => {
  const VALID = ['latest', 'v1.0', '_x', 'A', '1', 'a-b_c.d', 'UPPER.lower-09', 't'.repeat(128)];
  const INVALID = ['', '.x', '-x', 't'.repeat(129), 'a/b', 'a:b', 'a b', 'é', 'a+b'];

  for (const tag of VALID) {
    test(`accepts ${JSON.stringify(tag.length > 40 ? `${tag.length} chars` : tag)}`, () => {
      assert.equal(isValidTag(tag), true);
    });
  }

  for (const tag of INVALID) {
    test(`rejects ${JSON.stringify(tag.length > 40 ? `${tag.length} chars` : tag)}`, () => {
      assert.equal(isValidTag(tag), false);
    });
  }
});

describe('digest grammar', () => {
  const VALID: Array<[string, 'sha256' | 'sha512']> = [
    [`sha256:${SHA256_HEX}`, 'sha256'],
    [`sha512:${SHA512_HEX}`, 'sha512'],
    [`sha256:${'0123456789abcdef'.repeat(4)}`, 'sha256'],
  ];
  const INVALID = [
    'sha256:1234',
    `sha256:${'A'.repeat(64)}`,
    `sha256:${'g'.repeat(64)}`,
    `sha256:${'a'.repeat(65)}`,
    `sha512:${SHA256_HEX}`,
    `md5:${'a'.repeat(32)}`,
    `SHA256:${SHA256_HEX}`,
    'sha256',
    `:${SHA256_HEX}`,
    'sha256:',
    `sha256::${SHA256_HEX}`,
  ];

  for (const [digest, algorithm] of VALID) {
    test(`parses ${digest.slice(0, 20)}… as ${algorithm}`, () => {
      assert.deepEqual(parseDigest(digest), { algorithm, encoded: digest.slice(algorithm.length + 1), value: digest });
    });
  }

  for (const digest of INVALID) {
    test(`throws DIGEST_INVALID for ${JSON.stringify(digest.length > 30 ? `${digest.slice(0, 20)}… (${digest.length} chars)` : digest)}`, () => {
      assert.throws(() => parseDigest(digest), (error: unknown) => isRegistryError(error, 'DIGEST_INVALID'));
    });
  }

  test('looksLikeDigest is true for any value with a colon', () => {
    assert.equal(looksLikeDigest('sha256:1234'), true);
  });

  test('looksLikeDigest is false for a tag', () => {
    assert.equal(looksLikeDigest('latest'), false);
  });
});

describe('manifest reference', () => {
  test('reads a tag', () => {
    assert.deepEqual(parseManifestReference('v1.2'), { kind: 'tag', tag: 'v1.2' });
  });

  test('reads a digest', () => {
    const reference = parseManifestReference(`sha256:${SHA256_HEX}`);
    assert.equal(reference.kind, 'digest');
  });

  test('throws DIGEST_INVALID for sha256:1234', () => {
    assert.throws(() => parseManifestReference('sha256:1234'), (error: unknown) => isRegistryError(error, 'DIGEST_INVALID'));
  });

  test('throws TAG_INVALID for a leading dot', () => {
    assert.throws(() => parseManifestReference('.hidden'), (error: unknown) => isRegistryError(error, 'TAG_INVALID'));
  });

  test('throws TAG_INVALID for 129 characters', () => {
    assert.throws(() => parseManifestReference('t'.repeat(129)), (error: unknown) => isRegistryError(error, 'TAG_INVALID'));
  });
});
