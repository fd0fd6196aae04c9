import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, KeyObject } from 'node:crypto';
import jwt, { type Jwt, type JwtHeader, type JwtPayload } from 'jsonwebtoken';
import type { AccessEntry } from './scopes.js';

/** JWS algorithms a signing key may use. */
export const SIGNING_ALGORITHMS = ['ES256', 'RS256'] as const;

export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/**
 * A key for signing or verifying tokens. A key that only verifies, such as a
 * retired one, needs only `publicKey`. When only `privateKey` is given, the
 * public key is derived from it. PEM strings and KeyObjects are both accepted.
 */
export interface SigningKey {
  kid: string;
  alg: SigningAlgorithm;
  privateKey?: KeyObject | string;
  publicKey?: KeyObject | string;
}

export interface TokenServiceOptions {
  /** The `iss` claim of every token, usually the URL of the token endpoint. */
  issuer: string;
  /** The `service` of the token request, which is the `aud` claim of access tokens. */
  service: string;
  /** The first key signs. Every key verifies, so a retired key stays here until the tokens it signed have expired. */
  keys: readonly SigningKey[];
  /** Lifetime of access tokens in seconds, at least 60. Default 300. */
  lifetimeSeconds?: number;
  /** Lifetime of refresh tokens in seconds. Default 30 days. */
  refreshLifetimeSeconds?: number;
  /** Clock difference tolerated on `exp` and `nbf`, in seconds. Default 30. */
  leewaySeconds?: number;
  /** Current time in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** The registered JWT claims (RFC 7519) that every token of a TokenService carries. Times are in seconds since the epoch. */
export interface RegisteredClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
}

/** Claims of an access token, as in the Docker Registry token specification. */
export interface AccessTokenClaims extends RegisteredClaims {
  access: AccessEntry[];
}

/**
 * Claims of a refresh token. Its audience is the issuer, because only the
 * token endpoint accepts it, and `service` is the service it gets access
 * tokens for. `client_id` is the client it was issued to.
 */
export interface RefreshTokenClaims extends RegisteredClaims {
  service: string;
  client_id: string;
}

/** A signed token with the values a token response needs. */
export interface IssuedToken<Claims> {
  token: string;
  claims: Claims;
  /** Seconds from `issuedAt` until the token expires. */
  expiresIn: number;
  issuedAt: Date;
}

/** A public key in JSON Web Key form (RFC 7517), as served in a JWKS. */
export interface PublicJwk {
  kty: string;
  kid: string;
  alg: SigningAlgorithm;
  use: 'sig';
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

/** Reason for rejecting a token. */
export type TokenInvalidReason =
  | 'malformed'
  | 'wrong-type'
  | 'missing-key-id'
  | 'unknown-key-id'
  | 'algorithm-mismatch'
  | 'invalid-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'invalid-claims';

const REASON_MESSAGES: Record<TokenInvalidReason, string> = {
  malformed: 'token is not a well-formed JWT',
  'wrong-type': 'token has the wrong type for this use',
  'missing-key-id': 'token header has no key id',
  'unknown-key-id': 'token is signed with an unknown key',
  'algorithm-mismatch': "token algorithm does not match its key's algorithm",
  'invalid-signature': 'token signature is invalid',
  expired: 'token has expired',
  'not-yet-valid': 'token is not valid yet',
  'wrong-issuer': 'token has the wrong issuer',
  'wrong-audience': 'token has the wrong audience',
  'invalid-claims': 'token claims are missing or invalid',
};

/** A rejected token. The message states the reason and never contains the token or its claims. */
export class TokenInvalidError extends Error {
  constructor(readonly reason: TokenInvalidReason) {
    super(REASON_MESSAGES[reason]);
    this.name = 'TokenInvalidError';
  }
}

/** A signing key or TokenService option that cannot be used. The message names the key id, never key material. */
export class TokenConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenConfigError';
  }
}

/** The JWT header `typ` of each kind of token. A token of one kind is never accepted as the other. */
const ACCESS_TOKEN_TYPE = 'JWT';
const REFRESH_TOKEN_TYPE = 'refresh+jwt';

/** Per the Docker token specification, a token should never be returned with less than 60 seconds to live. */
const MIN_LIFETIME_SECONDS = 60;
const DEFAULT_LIFETIME_SECONDS = 300;
const DEFAULT_REFRESH_LIFETIME_SECONDS = 30 * 24 * 60 * 60;
const DEFAULT_LEEWAY_SECONDS = 30;
const MIN_RSA_MODULUS_BITS = 2048;

interface LoadedKey {
  kid: string;
  alg: SigningAlgorithm;
  privateKey?: KeyObject;
  publicKey: KeyObject;
}

/**
 * Signs and verifies the access tokens of the Docker token authentication
 * and the refresh tokens that `docker login` stores, as JWTs with asymmetric
 * keys.
 */
export class TokenService {
  readonly issuer: string;
  readonly service: string;
  readonly lifetimeSeconds: number;
  readonly refreshLifetimeSeconds: number;
  readonly leewaySeconds: number;
  readonly #keys: Map<string, LoadedKey>;
  readonly #signingKey: LoadedKey;
  readonly #now: () => number;

  /** Throws TokenConfigError when a key or an option cannot be used. */
  constructor(options: TokenServiceOptions) {
    if (options.issuer.length === 0) throw new TokenConfigError('the token issuer must not be empty');
    if (options.service.length === 0) throw new TokenConfigError('the token service must not be empty');
    this.issuer = options.issuer;
    this.service = options.service;

    this.lifetimeSeconds = options.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS;
    this.refreshLifetimeSeconds = options.refreshLifetimeSeconds ?? DEFAULT_REFRESH_LIFETIME_SECONDS;
    this.leewaySeconds = options.leewaySeconds ?? DEFAULT_LEEWAY_SECONDS;
    requireInteger('lifetimeSeconds', this.lifetimeSeconds, MIN_LIFETIME_SECONDS);
    requireInteger('refreshLifetimeSeconds', this.refreshLifetimeSeconds, MIN_LIFETIME_SECONDS);
    requireInteger('leewaySeconds', this.leewaySeconds, 0);
    this.#now = options.now ?? Date.now;

    const [first] = options.keys;
    if (!first) throw new TokenConfigError('at least one signing key is required');
    this.#keys = new Map();
    for (const key of options.keys) {
      if (this.#keys.has(key.kid)) throw new TokenConfigError(`two signing keys have the key id "${key.kid}"`);
      this.#keys.set(key.kid, loadKey(key));
    }
    const signingKey = this.#keys.get(first.kid) as LoadedKey;
    if (!signingKey.privateKey) throw new TokenConfigError(`the first key "${first.kid}" signs tokens, so it needs a private key`);
    this.#signingKey = signingKey;
  }

  /** The key id in the header of the tokens this service signs. */
  get signingKeyId(): string {
    return this.#signingKey.kid;
  }

  /** Signs an access token for a subject with the access that grantedActions computed. */
  sign(subject: string, access: readonly AccessEntry[]): IssuedToken<AccessTokenClaims> {
    requireSubject(subject);
    const times = this.#times(this.lifetimeSeconds);
    const claims: AccessTokenClaims = {
      iss: this.issuer,
      sub: subject,
      aud: this.service,
      ...times,
      jti: newTokenId(),
      access: access.map((entry) => ({ type: entry.type, name: entry.name, actions: [...entry.actions] })),
    };
    return this.#issue(claims, ACCESS_TOKEN_TYPE, this.lifetimeSeconds);
  }

  /**
   * Verifies an access token and returns its claims. Throws TokenInvalidError
   * unless the header names a configured key by `kid` and that key's algorithm,
   * the signature is valid, the token is an access token, and `iss`, `aud`,
   * `exp` and `nbf` are right within the leeway.
   */
  verify(token: string): AccessTokenClaims {
    const payload = this.#verifyJwt(token, ACCESS_TOKEN_TYPE, this.service);
    const registered = registeredClaims(payload);
    const access = parseAccessClaim(payload.access);
    if (!access) throw new TokenInvalidError('invalid-claims');
    return { ...registered, access };
  }

  /**
   * Signs a refresh token for a subject. It carries no access: each access
   * token obtained with it gets the access the subject's grants allow at
   * that time.
   */
  signRefreshToken(subject: string, clientId: string): IssuedToken<RefreshTokenClaims> {
    requireSubject(subject);
    const times = this.#times(this.refreshLifetimeSeconds);
    const claims: RefreshTokenClaims = {
      iss: this.issuer,
      sub: subject,
      aud: this.issuer,
      ...times,
      jti: newTokenId(),
      service: this.service,
      client_id: clientId,
    };
    return this.#issue(claims, REFRESH_TOKEN_TYPE, this.refreshLifetimeSeconds);
  }

  /**
   * Verifies a refresh token like an access token, with the issuer as the
   * audience, and checks that it was issued for this service. It does not
   * compare `client_id` with the request, because clients that share Docker's
   * credential store (buildx, containerd) send their own client id with
   * the token `docker login` stored.
   */
  verifyRefreshToken(token: string): RefreshTokenClaims {
    const payload = this.#verifyJwt(token, REFRESH_TOKEN_TYPE, this.issuer);
    const registered = registeredClaims(payload);
    const { service, client_id: clientId } = payload;
    if (typeof service !== 'string' || typeof clientId !== 'string') throw new TokenInvalidError('invalid-claims');
    if (service !== this.service) throw new TokenInvalidError('wrong-audience');
    return { ...registered, service, client_id: clientId };
  }

  /** Returns the public keys as a JSON Web Key Set (RFC 7517), with no private key material. */
  jwks(): { keys: PublicJwk[] } {
    return { keys: [...this.#keys.values()].map(publicJwk) };
  }

  #times(lifetimeSeconds: number): { exp: number; nbf: number; iat: number } {
    const iat = Math.floor(this.#now() / 1000);
    return { iat, nbf: iat, exp: iat + lifetimeSeconds };
  }

  #issue<Claims extends AccessTokenClaims | RefreshTokenClaims>(claims: Claims, type: string, lifetimeSeconds: number): IssuedToken<Claims> {
    const key = this.#signingKey;
    const token = jwt.sign(claims, key.privateKey as KeyObject, {
      algorithm: key.alg,
      header: { alg: key.alg, kid: key.kid, typ: type },
    });
    return { token, claims, expiresIn: lifetimeSeconds, issuedAt: new Date(claims.iat * 1000) };
  }

  /**
   * Verifies a JWT of one type for one audience and returns its payload. The
   * header is checked before any signature work: the token type, a known
   * `kid`, and the algorithm of that key. Passing only that algorithm to
   * jsonwebtoken rules out `none`, HMAC with a public key as the secret, and
   * any other algorithm swap.
   */
  #verifyJwt(token: string, type: string, audience: string): JwtPayload {
    const header = decodeHeader(token);
    if (header.typ !== type) throw new TokenInvalidError('wrong-type');
    if (typeof header.kid !== 'string' || header.kid.length === 0) throw new TokenInvalidError('missing-key-id');
    const key = this.#keys.get(header.kid);
    if (!key) throw new TokenInvalidError('unknown-key-id');
    if (header.alg !== key.alg) throw new TokenInvalidError('algorithm-mismatch');

    let payload: string | JwtPayload;
    try {
      payload = jwt.verify(token, key.publicKey, {
        algorithms: [key.alg],
        issuer: this.issuer,
        audience,
        clockTolerance: this.leewaySeconds,
        clockTimestamp: Math.floor(this.#now() / 1000),
      });
    } catch (error) {
      throw new TokenInvalidError(reasonOf(error));
    }
    if (typeof payload === 'string') throw new TokenInvalidError('malformed');
    return payload;
  }
}

/** Generates an ES256 (P-256) key pair whose key id is its RFC 7638 thumbprint. */
export function generateSigningKey(): SigningKey & { privateKey: KeyObject; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { kid: jwkThumbprint(publicKey), alg: 'ES256', privateKey, publicKey };
}

/**
 * Reads a PEM key for a TokenService. A private key signs and verifies, and a
 * public key only verifies. The algorithm follows from the key: ES256 for a
 * P-256 key, RS256 for an RSA key. The key id defaults to the RFC 7638
 * thumbprint. Throws TokenConfigError for any other key.
 */
export function importSigningKey(pem: string, kid?: string): SigningKey {
  const isPrivate = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem);
  let privateKey: KeyObject | undefined;
  let publicKey: KeyObject;
  try {
    privateKey = isPrivate ? createPrivateKey(pem) : undefined;
    publicKey = privateKey ? createPublicKey(privateKey) : createPublicKey(pem);
  } catch {
    throw new TokenConfigError(`the ${isPrivate ? 'private' : 'public'} key is not a valid PEM key`);
  }

  const alg = algorithmOf(publicKey);
  if (!alg) throw new TokenConfigError('only P-256 (ES256) and RSA (RS256) keys are supported');
  const key: SigningKey = { kid: kid ?? jwkThumbprint(publicKey), alg, publicKey };
  if (privateKey) key.privateKey = privateKey;
  return key;
}

/** Computes the RFC 7638 thumbprint of a public key: SHA-256 over its required JWK members, in base64url. */
export function jwkThumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  // RFC 7638 hashes the required members only, in lexicographic order and without whitespace.
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

function loadKey(key: SigningKey): LoadedKey {
  if (typeof key.kid !== 'string' || key.kid.length === 0) throw new TokenConfigError('every signing key needs a non-empty key id');
  if (!(SIGNING_ALGORITHMS as readonly string[]).includes(key.alg)) {
    throw new TokenConfigError(`key "${key.kid}": unsupported algorithm "${key.alg}", use ${SIGNING_ALGORITHMS.join(' or ')}`);
  }
  if (key.privateKey === undefined && key.publicKey === undefined) throw new TokenConfigError(`key "${key.kid}" has neither a private nor a public key`);

  const privateKey = key.privateKey === undefined ? undefined : toPrivateKey(key.kid, key.privateKey);
  const publicKey = key.publicKey === undefined ? createPublicKey(privateKey as KeyObject) : toPublicKey(key.kid, key.publicKey);

  if (algorithmOf(publicKey) !== key.alg) {
    throw new TokenConfigError(`key "${key.kid}" does not fit ${key.alg}: ES256 needs a P-256 key and RS256 an RSA key of at least ${MIN_RSA_MODULUS_BITS} bits`);
  }
  if (privateKey && jwkThumbprint(createPublicKey(privateKey)) !== jwkThumbprint(publicKey)) {
    throw new TokenConfigError(`key "${key.kid}": the private and public keys are not a pair`);
  }

  const loaded: LoadedKey = { kid: key.kid, alg: key.alg, publicKey };
  if (privateKey) loaded.privateKey = privateKey;
  return loaded;
}

function toPrivateKey(kid: string, key: KeyObject | string): KeyObject {
  if (key instanceof KeyObject) {
    if (key.type !== 'private') throw new TokenConfigError(`key "${kid}": the private key is a ${key.type} key`);
    return key;
  }
  try {
    return createPrivateKey(key);
  } catch {
    throw new TokenConfigError(`key "${kid}": the private key is not a valid PEM key`);
  }
}

function toPublicKey(kid: string, key: KeyObject | string): KeyObject {
  if (key instanceof KeyObject) {
    if (key.type === 'secret') throw new TokenConfigError(`key "${kid}": the public key is a secret key`);
    return key.type === 'public' ? key : createPublicKey(key);
  }
  try {
    return createPublicKey(key);
  } catch {
    throw new TokenConfigError(`key "${kid}": the public key is not a valid PEM key`);
  }
}

function algorithmOf(publicKey: KeyObject): SigningAlgorithm | undefined {
  const details = publicKey.asymmetricKeyDetails;
  if (publicKey.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') return 'ES256';
  if (publicKey.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= MIN_RSA_MODULUS_BITS) return 'RS256';
  return undefined;
}

function publicJwk(key: LoadedKey): PublicJwk {
  const jwk = key.publicKey.export({ format: 'jwk' });
  // Members are copied one by one so that no private member can reach the output.
  const common = { kty: jwk.kty as string, kid: key.kid, alg: key.alg, use: 'sig' as const };
  if (jwk.kty === 'EC') return { ...common, crv: jwk.crv, x: jwk.x, y: jwk.y };
  return { ...common, n: jwk.n, e: jwk.e };
}

function decodeHeader(token: string): JwtHeader {
  if (typeof token !== 'string' || token.split('.').length !== 3) throw new TokenInvalidError('malformed');
  let decoded: Jwt | null;
  try {
    decoded = jwt.decode(token, { complete: true });
  } catch {
    throw new TokenInvalidError('malformed');
  }
  if (!decoded || typeof decoded.header !== 'object' || decoded.header === null) throw new TokenInvalidError('malformed');
  return decoded.header;
}

function reasonOf(error: unknown): TokenInvalidReason {
  if (error instanceof jwt.TokenExpiredError) return 'expired';
  if (error instanceof jwt.NotBeforeError) return 'not-yet-valid';
  if (!(error instanceof jwt.JsonWebTokenError)) return 'invalid-signature';

  // jsonwebtoken 9 distinguishes these failures only by their messages.
  const message = error.message;
  if (message.startsWith('jwt issuer invalid')) return 'wrong-issuer';
  if (message.startsWith('jwt audience invalid')) return 'wrong-audience';
  if (message === 'invalid signature' || message === 'jwt signature is required') return 'invalid-signature';
  if (message === 'invalid exp value' || message === 'invalid nbf value') return 'invalid-claims';
  return 'malformed';
}

/**
 * Returns the registered claims, all of which are required here although
 * jsonwebtoken treats `exp`, `nbf`, `iat`, `sub` and `jti` as optional. An
 * `aud` list, which jsonwebtoken accepts, is rejected because tokens of this
 * service always have a single audience.
 */
function registeredClaims(payload: JwtPayload): RegisteredClaims {
  const { iss, sub, aud, exp, nbf, iat, jti } = payload;
  if (typeof iss !== 'string' || typeof aud !== 'string' || typeof sub !== 'string' || sub.length === 0 || typeof jti !== 'string') {
    throw new TokenInvalidError('invalid-claims');
  }
  if (!isInteger(exp) || !isInteger(nbf) || !isInteger(iat)) throw new TokenInvalidError('invalid-claims');
  return { iss, sub, aud, exp, nbf, iat, jti };
}

function isInteger(value: unknown): value is number {
  return Number.isInteger(value);
}

function parseAccessClaim(value: unknown): AccessEntry[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const entries: AccessEntry[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined;
    const { type, name, actions } = item as Record<string, unknown>;
    if (type !== 'repository' && type !== 'registry') return undefined;
    if (typeof name !== 'string') return undefined;
    if (!Array.isArray(actions) || !actions.every((action) => typeof action === 'string')) return undefined;
    entries.push({ type, name, actions: [...(actions as string[])] });
  }
  return entries;
}

function requireInteger(option: string, value: number, minimum: number): void {
  if (!Number.isInteger(value) || value < minimum) throw new TokenConfigError(`${option} must be an integer of at least ${minimum}`);
}

function requireSubject(subject: string): void {
  if (subject.length === 0) throw new Error('a token subject must not be empty');
}

function newTokenId(): string {
  return randomBytes(16).toString('base64url');
}
