import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type pino from 'pino';
import { MEDIA_TYPES } from '../registry/media-types.js';
import { MAX_MANIFEST_BYTES } from '../registry/manifests.js';
import { SUPPORTED_DIGEST_ALGORITHMS, looksLikeDigest, parseDigest, type DigestAlgorithm } from '../registry/reference.js';
import { UpstreamRequestError, type UpstreamFailure } from './errors.js';
import type { UpstreamCredentials } from './upstreams.js';

/** Address, scheme and credentials of one upstream registry. */
export interface UpstreamEndpoint {
  /** host or host:port. */
  host: string;
  scheme: 'https' | 'http';
  credentials: UpstreamCredentials | null;
}

export interface UpstreamClientOptions {
  logger: pino.Logger;
  /** Aborts every request of this client. */
  signal?: AbortSignal;
  /** Limit for a whole token or manifest request and for the response headers of a blob, in milliseconds. */
  requestTimeoutMs?: number;
  /** Maximum pause between two chunks of a blob body, in milliseconds. */
  blobIdleTimeoutMs?: number;
  /** Redirects followed for one blob download. */
  maxRedirects?: number;
}

/** Manifest bytes exactly as the upstream sent them, with their verified digest. */
export interface FetchedManifest {
  digest: string;
  /** Content-Type of the response without parameters, or null when absent. */
  contentType: string | null;
  bytes: Buffer;
}

/** Manifest media types requested from upstreams: OCI and Docker schema 2, images and indexes. */
export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifestList, MEDIA_TYPES.dockerManifest].join(', ');

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_BLOB_IDLE_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_REDIRECTS = 5;

/** Largest token response read, in bytes. */
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;

/** Largest error body read to find the registry's error code, in bytes. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** Seconds subtracted from a token's lifetime so that it is renewed before the upstream rejects it. */
const TOKEN_EXPIRY_MARGIN_SECONDS = 10;

/** Lifetime assumed for a token whose response gives none, in seconds (the Docker token specification's default). */
const DEFAULT_TOKEN_LIFETIME_SECONDS = 60;

interface Challenge {
  /** Authentication scheme in lowercase, such as `bearer` or `basic`. */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header and returns its first Bearer challenge,
 * else its first Basic challenge, else null.
 */
export function parseChallenge(header: string | null): Challenge | null {
  if (header === null) return null;
  const challenges: Challenge[] = [];
  // Each match is a scheme (a token not followed by "=") or one auth-param of the scheme before it.
  const tokenPattern = /\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?/y;
  let match: RegExpExecArray | null;
  while ((match = tokenPattern.exec(header)) !== null) {
    const name = (match[1] as string).toLowerCase();
    const value = match[2];
    if (value === undefined) {
      challenges.push({ scheme: name, params: {} });
      continue;
    }
    const current = challenges.at(-1);
    if (!current) return null;
    current.params[name] = value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
  }
  return challenges.find((challenge) => challenge.scheme === 'bearer') ?? challenges.find((challenge) => challenge.scheme === 'basic') ?? null;
}

function failure(kind: UpstreamFailure, message: string, retryable = false): UpstreamRequestError {
  return new UpstreamRequestError(kind, message, retryable);
}

/** Returns the digest of bytes with an algorithm the registry supports. */
function digestOf(algorithm: DigestAlgorithm, bytes: Buffer): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** Returns a URL without its query string, for messages and logs, because presigned URLs carry signatures in the query. */
function describeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/**
 * Reads a response body up to a limit. A larger body fails with
 * invalid_response, and Content-Length is checked first so that an oversized
 * body is not read at all.
 */
async function readLimited(response: Response, limit: number, what: string): Promise<Buffer> {
  const declared = response.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw failure('invalid_response', `${what} is ${declared} bytes; the limit is ${limit}`);
  }
  if (!response.body) return Buffer.alloc(0);

  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > limit) {
      await response.body.cancel().catch(() => undefined);
      throw failure('invalid_response', `${what} is larger than the limit of ${limit} bytes`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, size);
}

/**
 * Hashes and counts a blob's bytes as they pass. More bytes than expected, or
 * a digest that differs at the end, fail the stream with digest_mismatch, so
 * a consumer never receives a complete stream of wrong content.
 */
class BlobVerifier extends Transform {
  private readonly hash: Hash;
  private received = 0;

  constructor(
    private readonly expected: { digest: string; algorithm: DigestAlgorithm; size: number },
    private readonly source: string,
    private readonly onChunk: () => void,
  ) {
    super();
    this.hash = createHash(expected.algorithm);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.onChunk();
    this.received += chunk.length;
    if (this.received > this.expected.size) {
      callback(failure('digest_mismatch', `${this.source} sent more than the ${this.expected.size} bytes its descriptor declares`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.received !== this.expected.size) {
      callback(failure('digest_mismatch', `${this.source} sent ${this.received} bytes but its descriptor declares ${this.expected.size}`));
      return;
    }
    const actual = `${this.expected.algorithm}:${this.hash.digest('hex')}`;
    if (actual !== this.expected.digest) {
      callback(failure('digest_mismatch', `${this.source} does not match its digest: expected ${this.expected.digest}, received ${actual}`));
      return;
    }
    callback();
  }
}

/**
 * A client of the OCI Distribution API (Docker Registry HTTP API v2) for
 * pulling from one upstream registry. On a Bearer challenge it requests a
 * token from the realm's token service, with Basic credentials when the
 * upstream has them. On a Basic challenge it sends the credentials. It
 * verifies the digest of every manifest and blob it returns.
 *
 * Token and manifest requests never follow redirects. Blob downloads follow
 * up to maxRedirects, because registries commonly redirect them to a CDN;
 * the Authorization header goes only to the upstream's own origin.
 *
 * No credential or token appears in an error message or log line.
 */
export class UpstreamClient {
  private readonly baseUrl: URL;
  private readonly tokens = new Map<string, { value: string; expiresAt: number }>();
  private useBasic = false;
  private readonly requestTimeoutMs: number;
  private readonly blobIdleTimeoutMs: number;
  private readonly maxRedirects: number;

  constructor(
    private readonly endpoint: UpstreamEndpoint,
    private readonly options: UpstreamClientOptions,
  ) {
    this.baseUrl = new URL(`${endpoint.scheme}://${endpoint.host}/`);
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.blobIdleTimeoutMs = options.blobIdleTimeoutMs ?? DEFAULT_BLOB_IDLE_TIMEOUT_MS;
    this.maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  }

  /**
   * Fetches a manifest by tag or digest. The digest is computed over the
   * bytes received; it must equal the requested digest and the
   * Docker-Content-Digest header when the upstream sends one.
   */
  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    const requested = looksLikeDigest(reference) ? parseDigest(reference) : null;
    const url = new URL(`v2/${repository}/manifests/${reference}`, this.baseUrl);
    const signal = this.requestSignal();
    const response = await this.authorizedFetch(url, repository, { accept: MANIFEST_ACCEPT, signal });
    await this.expectOk(response, `manifest ${repository}:${reference}`);
    const bytes = await this.withTimeoutMapping(readLimited(response, MAX_MANIFEST_BYTES, `manifest ${repository}:${reference}`), signal);

    const digest = digestOf(requested?.algorithm ?? 'sha256', bytes);
    if (requested && digest !== requested.value) {
      throw failure('digest_mismatch', `manifest ${repository}@${requested.value} from ${this.endpoint.host} does not match its digest: the bytes received hash to ${digest}`);
    }
    const headerDigest = response.headers.get('docker-content-digest');
    if (headerDigest !== null) this.checkHeaderDigest(headerDigest, bytes, `manifest ${repository}:${reference}`);

    const contentType = response.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase() || null;
    return { digest, contentType, bytes };
  }

  /**
   * Opens a blob as a stream that fails unless its bytes match the digest
   * and size of the descriptor. Redirects are followed and logged.
   */
  async openBlob(repository: string, descriptor: { digest: string; size: number }): Promise<Readable> {
    this.options.signal?.throwIfAborted();
    const { algorithm } = parseDigest(descriptor.digest);
    const what = `blob ${descriptor.digest} of ${repository}`;
    const controller = new AbortController();
    const abortFromOutside = () => controller.abort(this.options.signal?.reason);
    this.options.signal?.addEventListener('abort', abortFromOutside, { once: true });
    const headersTimer = setTimeout(() => controller.abort(failure('timeout', `${what}: no response from ${this.endpoint.host} within ${this.requestTimeoutMs} ms`, true)), this.requestTimeoutMs);

    let response: Response;
    try {
      response = await this.fetchBlobResponse(repository, descriptor.digest, controller.signal);
      await this.expectOk(response, what);
    } catch (error) {
      this.options.signal?.removeEventListener('abort', abortFromOutside);
      throw error;
    } finally {
      clearTimeout(headersTimer);
    }

    const declared = response.headers.get('content-length');
    if (declared !== null && Number(declared) !== descriptor.size) {
      controller.abort();
      this.options.signal?.removeEventListener('abort', abortFromOutside);
      throw failure('digest_mismatch', `${what}: the upstream sends ${declared} bytes but the descriptor declares ${descriptor.size}`);
    }

    // NOTE: the idle timer also runs while the blob store applies backpressure, so a store that stalls longer than the timeout fails the copy.
    let idleTimer: NodeJS.Timeout | undefined;
    const resetIdleTimer = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        const timeout = failure('timeout', `${what}: no bytes arrived for ${this.blobIdleTimeoutMs} ms`, true);
        verifier.destroy(timeout);
        controller.abort(timeout);
      }, this.blobIdleTimeoutMs);
    };
    const verifier = new BlobVerifier({ digest: descriptor.digest, algorithm, size: descriptor.size }, `${what} from ${this.endpoint.host}`, resetIdleTimer);
    const body = response.body ? Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>) : Readable.from([]);
    resetIdleTimer();
    pipeline(body, verifier, (error) => {
      clearTimeout(idleTimer);
      this.options.signal?.removeEventListener('abort', abortFromOutside);
      if (error && !verifier.destroyed) verifier.destroy(error);
    });
    return verifier;
  }

  /** Sends GET to the upstream and follows blob redirects, each one checked and logged. */
  private async fetchBlobResponse(repository: string, digest: string, signal: AbortSignal): Promise<Response> {
    let url = new URL(`v2/${repository}/blobs/${digest}`, this.baseUrl);
    let response = await this.authorizedFetch(url, repository, { signal });

    for (let hop = 1; response.status >= 300 && response.status < 400 && response.headers.has('location'); hop++) {
      await response.body?.cancel().catch(() => undefined);
      if (hop > this.maxRedirects) throw failure('redirect', `blob ${digest} of ${repository}: more than ${this.maxRedirects} redirects`);
      const next = new URL(response.headers.get('location') as string, url);
      this.checkRedirectTarget(next, digest);
      this.options.logger.info({ repository, digest, hop, status: response.status, from: url.origin, to: next.origin }, 'following a blob redirect from the upstream');
      url = next;
      // Credentials and tokens are for the upstream only; a CDN URL carries its own authorization.
      response = url.origin === this.baseUrl.origin ? await this.authorizedFetch(url, repository, { signal }) : await this.send(url, {}, signal);
    }
    return response;
  }

  /** Allows redirects to HTTPS anywhere, and to plain HTTP only on the origin of an upstream that is reached over HTTP. */
  private checkRedirectTarget(target: URL, digest: string): void {
    if (target.protocol === 'https:') return;
    if (target.protocol === 'http:' && this.endpoint.scheme === 'http' && target.origin === this.baseUrl.origin) return;
    throw failure('redirect', `blob ${digest}: the upstream redirected to ${target.protocol}//${target.host}, which is not HTTPS`);
  }

  /**
   * Sends a request with the Authorization this client has for the
   * repository. On 401 it fetches credentials for the challenge once and
   * sends the request again. A second 401 fails with unauthorized.
   */
  private async authorizedFetch(url: URL, repository: string, request: { accept?: string; signal: AbortSignal }): Promise<Response> {
    const scope = `repository:${repository}:pull`;
    const headers: Record<string, string> = request.accept ? { accept: request.accept } : {};
    const first = await this.send(url, { ...headers, ...this.authorizationFor(scope) }, request.signal);
    if (first.status !== 401) return first;
    await first.body?.cancel().catch(() => undefined);

    const challenge = parseChallenge(first.headers.get('www-authenticate'));
    if (!challenge) throw failure('unauthorized', `${this.endpoint.host} responded 401 without a Bearer or Basic challenge`);
    if (challenge.scheme === 'basic') {
      if (!this.endpoint.credentials) throw failure('unauthorized', `${this.endpoint.host} requires credentials: add them to the upstream`);
      this.useBasic = true;
    } else {
      await this.fetchToken(challenge.params, scope, request.signal);
    }

    const second = await this.send(url, { ...headers, ...this.authorizationFor(scope) }, request.signal);
    if (second.status === 401) {
      await second.body?.cancel().catch(() => undefined);
      const hint = this.endpoint.credentials ? 'the upstream rejected its credentials' : 'the upstream has no credentials configured';
      throw failure('unauthorized', `${this.endpoint.host} denied access to ${repository}: ${hint}`);
    }
    return second;
  }

  private authorizationFor(scope: string): Record<string, string> {
    const token = this.tokens.get(scope);
    if (token && token.expiresAt > Date.now()) return { authorization: `Bearer ${token.value}` };
    const { credentials } = this.endpoint;
    if (this.useBasic && credentials) return { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` };
    return {};
  }

  /**
   * Gets a token from the realm of a Bearer challenge, as the Docker token
   * specification describes: GET realm?service=&scope= with Basic
   * credentials when the upstream has them, anonymously otherwise.
   */
  private async fetchToken(params: Record<string, string>, scope: string, signal: AbortSignal): Promise<void> {
    const realmText = params.realm;
    if (!realmText) throw failure('unauthorized', `${this.endpoint.host} sent a Bearer challenge without a realm`);
    let realm: URL;
    try {
      realm = new URL(realmText);
    } catch {
      throw failure('invalid_response', `${this.endpoint.host} sent a Bearer challenge whose realm is not a URL`);
    }
    // Credentials go over plain HTTP only to the upstream itself, and only when the admin allowed HTTP for it.
    const sameOrigin = realm.origin === this.baseUrl.origin;
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && sameOrigin)) {
      throw failure('invalid_response', `${this.endpoint.host} sent a token realm on ${realm.protocol}//${realm.host}; only HTTPS realms, or the upstream's own origin, are used`);
    }
    // NOTE: a realm on another HTTPS host receives the upstream's credentials, as Docker clients send them there too.
    if (params.service !== undefined) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? scope);

    const { credentials } = this.endpoint;
    const headers: Record<string, string> = credentials ? { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` } : {};
    this.options.logger.debug({ upstream: this.endpoint.host, realm: describeUrl(realm), withCredentials: credentials !== null }, 'requesting a token from the upstream token service');
    const response = await this.send(realm, headers, signal);
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel().catch(() => undefined);
      throw failure('unauthorized', `the token service ${describeUrl(realm)} of ${this.endpoint.host} responded ${response.status}: ${credentials ? 'check the upstream credentials' : 'the upstream may need credentials'}`);
    }
    await this.expectOk(response, `token from ${describeUrl(realm)}`);

    const body = await this.withTimeoutMapping(readLimited(response, MAX_TOKEN_RESPONSE_BYTES, 'token response'), signal);
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw failure('invalid_response', `the token service ${describeUrl(realm)} responded with a body that is not JSON`);
    }
    const token = typeof parsed.token === 'string' && parsed.token !== '' ? parsed.token : parsed.access_token;
    if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
      throw failure('invalid_response', `the token service ${describeUrl(realm)} responded without a usable token`);
    }
    const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_LIFETIME_SECONDS;
    this.tokens.set(scope, { value: token, expiresAt: Date.now() + Math.max(lifetime - TOKEN_EXPIRY_MARGIN_SECONDS, 1) * 1000 });
  }

  /** Sends one GET without following redirects; a redirect is returned to the caller, which decides. */
  private async send(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(url, { method: 'GET', headers: { 'user-agent': 'portcullis-import', ...headers }, redirect: 'manual', signal });
    } catch (error) {
      throw this.translateFetchError(error, url, signal);
    }
    return response;
  }

  /** Fails for every status but 200, with the registry's error code when its body has one. A redirect here is an error. */
  private async expectOk(response: Response, what: string): Promise<void> {
    if (response.status === 200) return;
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel().catch(() => undefined);
      throw failure('redirect', `${what}: ${this.endpoint.host} responded with a redirect (${response.status}), which is followed only for blobs`);
    }

    const code = await this.registryErrorCode(response);
    const detail = `${this.endpoint.host} responded ${response.status}${code ? ` ${code}` : ''}`;
    if (response.status === 404) throw failure('not_found', `${what} not found: ${detail}`);
    if (response.status === 401 || response.status === 403) throw failure('unauthorized', `${what}: access denied: ${detail}`);
    const retryable = response.status === 408 || response.status === 429 || response.status >= 500;
    throw failure('http_status', `${what}: ${detail}`, retryable);
  }

  private async registryErrorCode(response: Response): Promise<string | null> {
    try {
      const body = await readLimited(response, MAX_ERROR_BODY_BYTES, 'error body');
      const parsed = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown }> };
      const code = parsed.errors?.[0]?.code;
      return typeof code === 'string' && /^[A-Z_]{1,64}$/.test(code) ? code : null;
    } catch {
      return null;
    }
  }

  private checkHeaderDigest(headerDigest: string, bytes: Buffer, what: string): void {
    const algorithm = headerDigest.split(':', 1)[0] as string;
    if (!(algorithm in SUPPORTED_DIGEST_ALGORITHMS)) return;
    const actual = digestOf(algorithm as DigestAlgorithm, bytes);
    if (actual !== headerDigest) {
      throw failure('digest_mismatch', `${what} from ${this.endpoint.host}: Docker-Content-Digest is ${headerDigest.slice(0, 150)} but the bytes received hash to ${actual}`);
    }
  }

  /** Creates a signal that aborts with the client's signal or after the request timeout. */
  private requestSignal(): AbortSignal {
    const timeout = AbortSignal.timeout(this.requestTimeoutMs);
    return this.options.signal ? AbortSignal.any([this.options.signal, timeout]) : timeout;
  }

  private async withTimeoutMapping<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
    try {
      return await work;
    } catch (error) {
      if (error instanceof UpstreamRequestError) throw error;
      throw this.translateFetchError(error, this.baseUrl, signal);
    }
  }

  /** Turns a fetch failure into a retryable UpstreamRequestError; an abort from the client's own signal is passed on as it is. */
  private translateFetchError(error: unknown, url: URL, signal: AbortSignal): unknown {
    if (error instanceof UpstreamRequestError) return error;
    if (signal.aborted) {
      if (signal.reason instanceof UpstreamRequestError) return signal.reason;
      if (this.options.signal?.aborted) return this.options.signal.reason;
      return failure('timeout', `${describeUrl(url)}: no answer within ${this.requestTimeoutMs} ms`, true);
    }
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : null;
    const code = (cause as { code?: unknown } | null)?.code;
    const reason = typeof code === 'string' ? code : (cause?.message ?? (error instanceof Error ? error.message : String(error)));
    return failure('network', `${describeUrl(url)}: request failed: ${reason}`, true);
  }
}
