/**
 * Helpers for the authentication tests: token requests, JWT decoding, tokens
 * signed by hand with chosen claims, and requests with a Bearer token.
 */
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, type JsonWebKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import type { Response, Test } from 'supertest';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/database.js';
import { basicAuthorization } from './server.js';

/** A login name and its password or robot secret. */
export interface Login {
  username: string;
  password: string;
}

/** Body of a token response. */
export interface TokenBody {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
}

/** The three parts of a compact JWS, decoded. */
export interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** `header.payload` as sent, which the signature covers. */
  signingInput: string;
  signature: Buffer;
}

const DEFAULT_AUTH = loadConfig({}).auth;

/** Default `iss` and `aud` of the test servers' tokens. */
export const TEST_ISSUER = DEFAULT_AUTH.issuer;
export const TEST_SERVICE = DEFAULT_AUTH.service;

/** Clock skew the test servers tolerate on `exp` and `nbf`, in seconds. */
export const TEST_LEEWAY_SECONDS = DEFAULT_AUTH.clockSkewSeconds;

/** Encodes a JSON value as one base64url JWS segment. */
export function encodeSegment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Splits and decodes a compact JWS without verifying it. */
export function decodeJwt(token: string): DecodedJwt {
  const parts = token.split('.');
  assert.equal(parts.length, 3, 'a JWS has three parts');
  const [header, payload, signature] = parts as [string, string, string];
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>,
    signingInput: `${header}.${payload}`,
    signature: Buffer.from(signature, 'base64url'),
  };
}

/** Returns the value of a Bearer Authorization header. */
export function bearerAuthorization(token: string): string {
  return `Bearer ${token}`;
}

/** Builds the query string of a GET /token request: service, every scope, then the extra parameters. */
export function tokenQuery(scopes: readonly string[], extra: Record<string, string> = {}): string {
  const parameters = new URLSearchParams({ service: TEST_SERVICE });
  for (const scope of scopes) parameters.append('scope', scope);
  for (const [name, value] of Object.entries(extra)) parameters.set(name, value);
  return parameters.toString();
}

/** GETs /token with Basic credentials, or none when `login` is null. */
export function requestToken(baseUrl: string, login: Login | null, scopes: readonly string[], extra: Record<string, string> = {}): Promise<Response> {
  const get = request(baseUrl).get(`/token?${tokenQuery(scopes, extra)}`);
  return login ? get.set('Authorization', basicAuthorization(login)) : get;
}

/** GETs /token, asserts 200 and returns the body. */
export async function fetchToken(baseUrl: string, login: Login | null, scopes: readonly string[], extra: Record<string, string> = {}): Promise<TokenBody> {
  const response = await requestToken(baseUrl, login, scopes, extra);
  assert.equal(response.status, 200, `token request failed: ${response.status} ${response.text}`);
  return response.body as TokenBody;
}

/** POSTs the OAuth 2 form to /token, as containerd does. */
export function postTokenForm(baseUrl: string, form: Record<string, string>): Promise<Response> {
  return request(baseUrl).post('/token').type('form').send(new URLSearchParams(form).toString());
}

/** Sends a request under /v2 with the given Authorization header value, or none. */
export function registryRequest(baseUrl: string, method: 'get' | 'head' | 'put' | 'post' | 'patch' | 'delete', path: string, authorization: string | null): Test {
  const pending = request(baseUrl)[method](path);
  return authorization === null ? pending : pending.set('Authorization', authorization);
}

/** The key a test server signs its tokens with, read from the `signing_keys` table. */
export interface ServerSigningKey {
  kid: string;
  privateKeyPem: string;
}

/** Reads the newest signing key of a test server's database. */
export async function serverSigningKey(db: Database): Promise<ServerSigningKey> {
  const row: { kid: string; private_key_pem: string } | undefined = await db('signing_keys').orderBy('created_at', 'desc').first('kid', 'private_key_pem');
  assert.ok(row, 'the server has no signing key');
  return { kid: row.kid, privateKeyPem: row.private_key_pem };
}

/** Returns the current time in whole seconds since the epoch. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Claims of an access token that a test server accepts, valid from now for five minutes. */
export function validAccessClaims(subject: string, access: Array<{ type: string; name: string; actions: string[] }>): Record<string, unknown> {
  const now = nowSeconds();
  return { iss: TEST_ISSUER, sub: subject, aud: TEST_SERVICE, iat: now, nbf: now, exp: now + 300, jti: `test-${now}-${Math.random().toString(36).slice(2)}`, access };
}

/** Signs claims as an ES256 access token with a PEM private key; the header gets `kid` and `typ: JWT` unless overridden. */
export function signAccessToken(claims: Record<string, unknown>, key: ServerSigningKey, header: Record<string, unknown> = {}): string {
  return jwt.sign(claims, key.privateKeyPem, { algorithm: 'ES256', header: { alg: 'ES256', kid: key.kid, typ: 'JWT', ...header } });
}

/** Builds an HS256 token whose HMAC secret is a PEM string, the key-confusion attack on servers that take `alg` from the token. */
export function hmacToken(header: Record<string, unknown>, claims: Record<string, unknown>, secret: string): string {
  const signingInput = `${encodeSegment({ ...header, alg: 'HS256' })}.${encodeSegment(claims)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

/** GETs the JWKS of a server and returns its keys. */
export async function fetchJwks(baseUrl: string): Promise<Array<JsonWebKey & { kid: string; alg: string }>> {
  const response = await request(baseUrl).get('/.well-known/jwks.json');
  assert.equal(response.status, 200, `JWKS request failed: ${response.status} ${response.text}`);
  return (response.body as { keys: Array<JsonWebKey & { kid: string; alg: string }> }).keys;
}

/** Returns the PEM (SPKI) of a JWK, as an attacker would derive it from the JWKS. */
export function pemOfJwk(jwk: JsonWebKey): string {
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
}

/** Returns the parameters of a `WWW-Authenticate: Bearer` header, or null when the header is absent or not Bearer. */
export function parseBearerChallenge(header: string | undefined): Record<string, string> | null {
  if (header === undefined || !header.startsWith('Bearer ')) return null;
  const parameters: Record<string, string> = {};
  for (const match of header.slice('Bearer '.length).matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) {
    parameters[match[1] as string] = (match[2] as string).replace(/\\(.)/g, '$1');
  }
  return parameters;
}
