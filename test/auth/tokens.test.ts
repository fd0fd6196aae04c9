import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import jwt from 'jsonwebtoken';
import type { AccessEntry } from '../../src/auth/scopes.js';
import {
  TokenConfigError,
  TokenInvalidError,
  TokenService,
  generateSigningKey,
  importSigningKey,
  jwkThumbprint,
  type SigningKey,
  type TokenInvalidReason,
  type TokenServiceOptions,
} from '../../src/auth/tokens.js';

const ISSUER = 'portcullis-token-service';
const SERVICE = 'portcullis-registry';
const START = Date.UTC(2030, 0, 1);
const ACCESS: AccessEntry[] = [
  { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
  { type: 'registry', name: 'catalog', actions: ['*'] },
];

const key = generateSigningKey();

/** Creates a service whose clock the test moves by setting `clock.now`. */
function serviceWithClock(overrides: Partial<TokenServiceOptions> = {}): { service: TokenService; clock: { now: number } } {
  const clock = { now: START };
  const service = new TokenService({ issuer: ISSUER, service: SERVICE, keys: [key], now: () => clock.now, ...overrides });
  return { service, clock };
}

function encodeSegment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decodeSegment(segment: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Valid access token claims for START, to be signed by hand. */
function accessClaims(): Record<string, unknown> {
  const iat = Math.floor(START / 1000);
  return { iss: ISSUER, sub: 'alice', aud: SERVICE, iat, nbf: iat, exp: iat + 300, jti: 'test-token-id', access: ACCESS };
}

function assertRejected(action: () => unknown, reason: TokenInvalidReason): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof TokenInvalidError, `expected TokenInvalidError, got ${String(error)}`);
    assert.equal(error.reason, reason);
    return true;
  });
}

describe('TokenService.verify rejects attacks', () => {
  test('unsigned token (alg none)', () => {
    const { service } = serviceWithClock();
    const token = `${encodeSegment({ alg: 'none', typ: 'JWT', kid: key.kid })}.${encodeSegment(accessClaims())}.`;

    assertRejected(() => service.verify(token), 'algorithm-mismatch');
  });

  test('HS256 token keyed with the public key PEM', () => {
    const { service } = serviceWithClock();
    const publicPem = key.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const signingInput = `${encodeSegment({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${encodeSegment(accessClaims())}`;
    const signature = createHmac('sha256', publicPem).update(signingInput).digest('base64url');

    assertRejected(() => service.verify(`${signingInput}.${signature}`), 'algorithm-mismatch');
  });

  test('token expired beyond the leeway', () => {
    const { service, clock } = serviceWithClock();
    const { token } = service.sign('alice', ACCESS);

    clock.now = START + (300 + 30 + 1) * 1000;
    assertRejected(() => service.verify(token), 'expired');
  });

  test('token not yet valid beyond the leeway', () => {
    const { service, clock } = serviceWithClock();
    const { token } = service.sign('alice', ACCESS);

    clock.now = START - 31 * 1000;
    assertRejected(() => service.verify(token), 'not-yet-valid');
  });

  test('token from another issuer', () => {
    const { service } = serviceWithClock();
    const { service: other } = serviceWithClock({ issuer: 'another-token-service' });
    const { token } = other.sign('alice', ACCESS);

    assertRejected(() => service.verify(token), 'wrong-issuer');
  });

  test('token for another audience', () => {
    const { service } = serviceWithClock();
    const { service: other } = serviceWithClock({ service: 'another-registry' });
    const { token } = other.sign('alice', ACCESS);

    assertRejected(() => service.verify(token), 'wrong-audience');
  });

  test('token signed with an unknown kid', () => {
    const { service } = serviceWithClock();
    const { service: other } = serviceWithClock({ keys: [generateSigningKey()] });
    const { token } = other.sign('alice', ACCESS);

    assertRejected(() => service.verify(token), 'unknown-key-id');
  });

  test('token without a kid', () => {
    const { service } = serviceWithClock();
    const token = jwt.sign(accessClaims(), key.privateKey, { algorithm: 'ES256', header: { alg: 'ES256', typ: 'JWT' } });

    assertRejected(() => service.verify(token), 'missing-key-id');
  });

  test('tampered access claim with the original signature', () => {
    const { service } = serviceWithClock();
    const { token } = service.sign('alice', [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = decodeSegment(payload);
    claims.access = [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }];

    assertRejected(() => service.verify(`${header}.${encodeSegment(claims)}.${signature}`), 'invalid-signature');
  });

  test('refresh token used as an access token', () => {
    const { service } = serviceWithClock();
    const { token } = service.signRefreshToken('alice', 'docker');

    assertRejected(() => service.verify(token), 'wrong-type');
  });
});

describe('TokenService.verify', () => {
  test('accepts a token expired within the leeway', () => {
    const { service, clock } = serviceWithClock();
    const { token } = service.sign('alice', ACCESS);

    clock.now = START + (300 + 29) * 1000;
    assert.equal(service.verify(token).sub, 'alice');
  });

  test('accepts a token not yet valid within the leeway', () => {
    const { service, clock } = serviceWithClock();
    const { token } = service.sign('alice', ACCESS);

    clock.now = START - 29 * 1000;
    assert.equal(service.verify(token).sub, 'alice');
  });

  test('accepts a token of an older key after rotation', () => {
    const oldKey = generateSigningKey();
    const newKey = generateSigningKey();
    const before = new TokenService({ issuer: ISSUER, service: SERVICE, keys: [oldKey] });
    const { token } = before.sign('alice', ACCESS);

    const retired: SigningKey = { kid: oldKey.kid, alg: 'ES256', publicKey: oldKey.publicKey };
    const after = new TokenService({ issuer: ISSUER, service: SERVICE, keys: [newKey, retired] });

    assert.equal(after.verify(token).sub, 'alice');
    assert.equal(after.signingKeyId, newKey.kid);
    const header = decodeSegment(after.sign('alice', ACCESS).token.split('.')[0] as string);
    assert.equal(header.kid, newKey.kid);
  });

  test('round-trips the access claim', () => {
    const { service } = serviceWithClock();
    const issued = service.sign('robot$ci', ACCESS);

    const claims = service.verify(issued.token);
    assert.deepEqual(claims.access, ACCESS);
    assert.deepEqual(claims, issued.claims);
  });

  test('sets the registered claims and response fields', () => {
    const { service } = serviceWithClock();
    const issued = service.sign('alice', []);
    const iat = Math.floor(START / 1000);

    assert.equal(issued.claims.iss, ISSUER);
    assert.equal(issued.claims.sub, 'alice');
    assert.equal(issued.claims.aud, SERVICE);
    assert.equal(issued.claims.iat, iat);
    assert.equal(issued.claims.nbf, iat);
    assert.equal(issued.claims.exp, iat + 300);
    assert.equal(issued.expiresIn, 300);
    assert.equal(issued.issuedAt.getTime(), iat * 1000);
    assert.deepEqual(issued.claims.access, []);
  });

  test('gives each token its own jti', () => {
    const { service } = serviceWithClock();

    assert.notEqual(service.sign('alice', ACCESS).claims.jti, service.sign('alice', ACCESS).claims.jti);
  });

  test('uses the configured lifetime and leeway', () => {
    const { service, clock } = serviceWithClock({ lifetimeSeconds: 60, leewaySeconds: 0 });
    const { token, expiresIn } = service.sign('alice', ACCESS);
    assert.equal(expiresIn, 60);

    clock.now = START + 59 * 1000;
    assert.equal(service.verify(token).sub, 'alice');
    clock.now = START + 60 * 1000;
    assertRejected(() => service.verify(token), 'expired');
  });

  test('rejects a signed token without exp', () => {
    const { service } = serviceWithClock();
    const { exp: _exp, ...claims } = accessClaims();
    const token = jwt.sign(claims, key.privateKey, { algorithm: 'ES256', header: { alg: 'ES256', typ: 'JWT', kid: key.kid } });

    assertRejected(() => service.verify(token), 'invalid-claims');
  });

  test('rejects a signed token with a malformed access claim', () => {
    const { service } = serviceWithClock();
    const claims = { ...accessClaims(), access: [{ type: 'repository', name: 'team-a/app', actions: 'pull' }] };
    const token = jwt.sign(claims, key.privateKey, { algorithm: 'ES256', header: { alg: 'ES256', typ: 'JWT', kid: key.kid } });

    assertRejected(() => service.verify(token), 'invalid-claims');
  });

  test('rejects a token whose alg differs from its key', () => {
    const { service } = serviceWithClock();
    const token = jwt.sign(accessClaims(), rsaKey(2048), { algorithm: 'RS256', header: { alg: 'RS256', typ: 'JWT', kid: key.kid } });

    assertRejected(() => service.verify(token), 'algorithm-mismatch');
  });

  test('rejects strings that are not JWTs', () => {
    const { service } = serviceWithClock();

    for (const token of ['', 'abc', 'a.b', 'a.b.c', '..', `${encodeSegment('text')}.${encodeSegment({})}.x`]) {
      assertRejected(() => service.verify(token), 'malformed');
    }
  });

  test('keeps the token out of error messages', () => {
    const { service, clock } = serviceWithClock();
    const { token } = service.sign('secret-subject-name', ACCESS);
    clock.now = START + 3600 * 1000;

    assert.throws(
      () => service.verify(token),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.doesNotMatch(error.message, /secret-subject-name|team-a/);
        for (const segment of token.split('.')) assert.ok(!error.message.includes(segment));
        return true;
      },
    );
  });

  test('accepts RS256 keys', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaKey = importSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const service = new TokenService({ issuer: ISSUER, service: SERVICE, keys: [rsaKey] });

    assert.equal(rsaKey.alg, 'RS256');
    const { token } = service.sign('alice', ACCESS);
    assert.equal(decodeSegment(token.split('.')[0] as string).alg, 'RS256');
    assert.deepEqual(service.verify(token).access, ACCESS);
  });
});

describe('TokenService refresh tokens', () => {
  test('round-trip subject, client id and service', () => {
    const { service } = serviceWithClock();
    const issued = service.signRefreshToken('alice', 'docker');

    const claims = service.verifyRefreshToken(issued.token);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.client_id, 'docker');
    assert.equal(claims.service, SERVICE);
    assert.equal(claims.aud, ISSUER);
    assert.equal(issued.expiresIn, 30 * 24 * 3600);
  });

  test('reject an access token', () => {
    const { service } = serviceWithClock();
    const { token } = service.sign('alice', ACCESS);

    assertRejected(() => service.verifyRefreshToken(token), 'wrong-type');
  });

  test('stay apart from access tokens when issuer equals service', () => {
    const { service } = serviceWithClock({ issuer: SERVICE });

    assertRejected(() => service.verify(service.signRefreshToken('alice', 'docker').token), 'wrong-type');
    assertRejected(() => service.verifyRefreshToken(service.sign('alice', ACCESS).token), 'wrong-type');
  });

  test('reject a token for another service', () => {
    const { service } = serviceWithClock();
    const { service: other } = serviceWithClock({ service: 'another-registry' });
    const { token } = other.signRefreshToken('alice', 'docker');

    assertRejected(() => service.verifyRefreshToken(token), 'wrong-audience');
  });

  test('expire after the refresh lifetime', () => {
    const { service, clock } = serviceWithClock({ refreshLifetimeSeconds: 3600 });
    const { token } = service.signRefreshToken('alice', 'docker');

    clock.now = START + (3600 + 31) * 1000;
    assertRejected(() => service.verifyRefreshToken(token), 'expired');
  });
});

describe('TokenService.jwks', () => {
  test('lists every key without private members', () => {
    const retired = generateSigningKey();
    const service = new TokenService({ issuer: ISSUER, service: SERVICE, keys: [key, { kid: retired.kid, alg: 'ES256', publicKey: retired.publicKey }] });

    const { keys } = service.jwks();
    assert.deepEqual(
      keys.map((jwk) => jwk.kid),
      [key.kid, retired.kid],
    );
    for (const jwk of keys) {
      assert.equal(jwk.kty, 'EC');
      assert.equal(jwk.crv, 'P-256');
      assert.equal(jwk.alg, 'ES256');
      assert.equal(jwk.use, 'sig');
      assert.equal(typeof jwk.x, 'string');
      assert.equal(typeof jwk.y, 'string');
      assert.ok(!('d' in jwk));
    }
  });

  test('verifies tokens with jsonwebtoken and the published key', () => {
    const { service } = serviceWithClock();
    const { token } = service.sign('alice', ACCESS);
    const published = createPublicKey({ key: { ...service.jwks().keys[0] }, format: 'jwk' });

    const payload = jwt.verify(token, published, { algorithms: ['ES256'], clockTimestamp: Math.floor(START / 1000) });
    assert.equal(typeof payload === 'object' && payload.sub, 'alice');
  });
});

describe('signing keys', () => {
  test('generateSigningKey uses the JWK thumbprint as kid', () => {
    const generated = generateSigningKey();

    assert.equal(generated.alg, 'ES256');
    assert.equal(generated.kid, jwkThumbprint(generated.publicKey));
    assert.match(generated.kid, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(generated.kid, generateSigningKey().kid);
  });

  test('importSigningKey reads private and public PEM', () => {
    const privatePem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const publicPem = key.publicKey.export({ type: 'spki', format: 'pem' }) as string;

    const signing = importSigningKey(privatePem);
    assert.equal(signing.kid, key.kid);
    assert.equal(signing.alg, 'ES256');
    assert.ok(signing.privateKey);

    const verifying = importSigningKey(publicPem, 'retired-2029');
    assert.equal(verifying.kid, 'retired-2029');
    assert.equal(verifying.privateKey, undefined);
  });

  test('importSigningKey keeps PEM text out of its error', () => {
    const broken = '-----BEGIN PRIVATE KEY-----\nTUlJQ-not-a-key\n-----END PRIVATE KEY-----\n';

    assert.throws(
      () => importSigningKey(broken),
      (error: unknown) => {
        assert.ok(error instanceof TokenConfigError);
        assert.doesNotMatch(error.message, /TUlJQ/);
        return true;
      },
    );
  });

  test('importSigningKey rejects unsupported curves', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });

    assert.throws(() => importSigningKey(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), TokenConfigError);
  });

  const invalidConfigurations: { name: string; keys: SigningKey[]; options?: Partial<TokenServiceOptions> }[] = [
    { name: 'no keys', keys: [] },
    { name: 'a first key without a private key', keys: [{ kid: 'public-only', alg: 'ES256', publicKey: key.publicKey }] },
    { name: 'an EC key declared RS256', keys: [{ ...key, alg: 'RS256' }] },
    { name: 'an RSA key of 1024 bits', keys: [{ kid: 'short', alg: 'RS256', privateKey: rsaKey(1024) }] },
    { name: 'two keys with one kid', keys: [key, { ...generateSigningKey(), kid: key.kid }] },
    { name: 'an empty kid', keys: [{ ...key, kid: '' }] },
    { name: 'keys that are not a pair', keys: [{ ...key, publicKey: generateSigningKey().publicKey }] },
    { name: 'a public key as private key', keys: [{ kid: 'swapped', alg: 'ES256', privateKey: key.publicKey }] },
    { name: 'a lifetime under 60 seconds', keys: [key], options: { lifetimeSeconds: 59 } },
    { name: 'a negative leeway', keys: [key], options: { leewaySeconds: -1 } },
    { name: 'an empty service', keys: [key], options: { service: '' } },
  ];
  for (const { name, keys, options } of invalidConfigurations) {
    test(`TokenService rejects ${name}`, () => {
      assert.throws(() => new TokenService({ issuer: ISSUER, service: SERVICE, keys, ...options }), TokenConfigError);
    });
  }
});

function rsaKey(modulusLength: number): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength }).privateKey;
}
