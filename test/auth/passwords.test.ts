import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_SCRYPT_PARAMETERS,
  PasswordHashFormatError,
  generateSecret,
  hashPassword,
  needsRehash,
  verifyPassword,
  verifyPasswordOfUnknownUser,
} from '../../src/auth/passwords.js';

/** Cheap parameters for tests that do not depend on the cost. */
const FAST = { N: 2 ** 10, r: 8, p: 1 };

describe('hashPassword', () => {
  test('encodes scrypt, the parameters, salt and hash', async () => {
    const encoded = await hashPassword('correct horse battery staple');

    const parts = encoded.split('$');
    assert.equal(parts.length, 6);
    assert.deepEqual(parts.slice(0, 4), ['scrypt', String(DEFAULT_SCRYPT_PARAMETERS.N), String(DEFAULT_SCRYPT_PARAMETERS.r), String(DEFAULT_SCRYPT_PARAMETERS.p)]);
    assert.equal(Buffer.from(parts[4] as string, 'base64url').length, 16);
    assert.equal(Buffer.from(parts[5] as string, 'base64url').length, 32);
    assert.ok(!encoded.includes('correct horse'));
  });

  test('differs on every call', async () => {
    const first = await hashPassword('same password', FAST);
    const second = await hashPassword('same password', FAST);

    assert.notEqual(first, second);
    assert.notEqual(first.split('$')[4], second.split('$')[4]);
  });

  test('rejects an empty password', async () => {
    await assert.rejects(hashPassword(''), /empty password/);
  });

  test('rejects parameters that are not a power of two', async () => {
    await assert.rejects(hashPassword('password', { N: 1000, r: 8, p: 1 }), RangeError);
  });
});

describe('verifyPassword', () => {
  test('accepts the right password', async () => {
    const encoded = await hashPassword('s3cret-Pässword', FAST);

    assert.equal(await verifyPassword('s3cret-Pässword', encoded), true);
  });

  test('accepts a hash made with the default parameters', async () => {
    const encoded = await hashPassword('default cost');

    assert.equal(await verifyPassword('default cost', encoded), true);
  });

  test('rejects a wrong password', async () => {
    const encoded = await hashPassword('right password', FAST);

    assert.equal(await verifyPassword('wrong password', encoded), false);
    assert.equal(await verifyPassword('right passwor', encoded), false);
    assert.equal(await verifyPassword('', encoded), false);
  });

  test('rejects a hash with a changed byte', async () => {
    const encoded = await hashPassword('password', FAST);
    const parts = encoded.split('$');
    const hash = Buffer.from(parts[5] as string, 'base64url');
    hash[0] = (hash[0] as number) ^ 1;
    parts[5] = hash.toString('base64url');

    assert.equal(await verifyPassword('password', parts.join('$')), false);
  });

  const malformed: { name: string; encoded: string }[] = [
    { name: 'an empty string', encoded: '' },
    { name: 'another algorithm', encoded: 'bcrypt$1024$8$1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA' },
    { name: 'a missing part', encoded: 'scrypt$1024$8$1$c2FsdA' },
    { name: 'N not a power of two', encoded: 'scrypt$1000$8$1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA' },
    { name: 'a memory cost over 128 MiB', encoded: 'scrypt$1048576$8$1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA' },
    { name: 'p over 4', encoded: 'scrypt$1024$8$5$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA' },
    { name: 'a non-numeric r', encoded: 'scrypt$1024$x$1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA' },
    { name: 'a short hash', encoded: 'scrypt$1024$8$1$c2FsdA$aGFzaA' },
    { name: 'a salt that is not base64url', encoded: 'scrypt$1024$8$1$c2F+sdA=$aGFzaGhhc2hoYXNoaGFzaA' },
    { name: 'an empty salt', encoded: 'scrypt$1024$8$1$$aGFzaGhhc2hoYXNoaGFzaA' },
  ];
  for (const { name, encoded } of malformed) {
    test(`throws on ${name}`, async () => {
      await assert.rejects(verifyPassword('password', encoded), PasswordHashFormatError);
    });
  }

  test('keeps the stored hash out of the error', async () => {
    const encoded = 'scrypt$1000$8$1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA';

    await assert.rejects(verifyPassword('password', encoded), (error: unknown) => {
      assert.ok(error instanceof PasswordHashFormatError);
      assert.doesNotMatch(error.message, /c2FsdA|aGFzaG/);
      return true;
    });
  });
});

describe('needsRehash', () => {
  test('is true for weaker parameters', async () => {
    assert.equal(needsRehash(await hashPassword('password', FAST)), true);
  });

  test('is false for the defaults', async () => {
    assert.equal(needsRehash(await hashPassword('password')), false);
  });
});

describe('verifyPasswordOfUnknownUser', () => {
  test('returns false', async () => {
    assert.equal(await verifyPasswordOfUnknownUser('anything'), false);
  });
});

describe('generateSecret', () => {
  test('returns 32 random bytes in base64url', () => {
    const secret = generateSecret();

    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(secret, 'base64url').length, 32);
  });

  test('differs on every call', () => {
    const secrets = new Set(Array.from({ length: 100 }, () => generateSecret()));

    assert.equal(secrets.size, 100);
  });
});
