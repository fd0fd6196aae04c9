import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { UpstreamClient, parseChallenge, type UpstreamEndpoint } from '../../src/upstream/client.js';
import { UpstreamRequestError, type UpstreamFailure } from '../../src/upstream/errors.js';
import { MediaType, sha256Digest } from '../helpers/images.js';
import { isSkopeoAvailable } from '../helpers/skopeo.js';
import { startFakeUpstream, startUpstreamRegistry, type FakeUpstream, type UpstreamRegistry } from './upstream-registry.js';

const skopeoMissing = (await isSkopeoAvailable()) ? false : 'skopeo is not installed';

/** Creates a logger that keeps every line, so that tests can read what was logged. */
function capturingLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}

/** Asserts that a promise rejects with an UpstreamRequestError of the given kind and returns it. */
async function rejectsWith(promise: Promise<unknown>, failure: UpstreamFailure): Promise<UpstreamRequestError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof UpstreamRequestError, `expected an UpstreamRequestError, got ${String(error)}`);
    assert.equal(error.failure, failure, error.message);
    return error;
  }
  assert.fail(`expected a ${failure} failure, but the call succeeded`);
}

describe('parseChallenge', () => {
  test('reads a Bearer challenge', () => {
    const challenge = parseChallenge('Bearer realm="https://auth.example.test/token",service="registry.example.test",scope="repository:team/app:pull"');
    assert.deepEqual(challenge, { scheme: 'bearer', params: { realm: 'https://auth.example.test/token', service: 'registry.example.test', scope: 'repository:team/app:pull' } });
  });

  test('prefers Bearer over Basic', () => {
    assert.equal(parseChallenge('Basic realm="x", Bearer realm="https://auth.example.test/token"')?.scheme, 'bearer');
  });

  test('reads a Basic challenge', () => {
    assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  });

  test('returns null for other schemes', () => {
    assert.equal(parseChallenge('Negotiate'), null);
    assert.equal(parseChallenge(null), null);
  });
});

describe('UpstreamClient against a Portcullis upstream', { skip: skopeoMissing }, () => {
  let upstream: UpstreamRegistry;
  let endpoint: UpstreamEndpoint;
  before(async () => {
    upstream = await startUpstreamRegistry();
    endpoint = { host: upstream.server.host, scheme: 'http', credentials: upstream.robot };
  });
  after(async () => {
    await upstream?.close();
  });

  test('token flow fetches a manifest by tag', async () => {
    const { logger, lines } = capturingLogger();
    const client = new UpstreamClient(endpoint, { logger });
    const { single } = upstream;

    const manifest = await client.getManifest(single.repository, single.tag);

    assert.equal(manifest.digest, single.fixture.manifest.digest);
    assert.deepEqual(manifest.bytes, single.fixture.manifestBytes);
    assert.equal(manifest.contentType, MediaType.ociManifest);
    const logged = lines.join('');
    assert.ok(!logged.includes(upstream.robot.password), 'the robot secret was logged');
    assert.ok(!/Bearer [A-Za-z0-9]/.test(logged), 'a bearer token was logged');
  });

  test('index child by digest and its blob', async () => {
    const client = new UpstreamClient(endpoint, { logger: pino({ level: 'silent' }) });
    const { index } = upstream;
    const child = index.fixture.children[0];
    const blob = index.fixture.blobs[1];
    assert.ok(child);
    assert.ok(blob);

    const indexManifest = await client.getManifest(index.repository, index.tag);
    const childManifest = await client.getManifest(index.repository, child.digest);
    const blobBytes = await readAll(await client.openBlob(index.repository, blob));

    assert.equal(indexManifest.digest, index.fixture.manifest.digest);
    assert.equal(childManifest.digest, child.digest);
    assert.equal(sha256Digest(blobBytes), blob.digest);
    assert.equal(blobBytes.length, blob.size);
  });

  test('no credentials is unauthorized', async () => {
    const client = new UpstreamClient({ ...endpoint, credentials: null }, { logger: pino({ level: 'silent' }) });
    const error = await rejectsWith(client.getManifest(upstream.single.repository, upstream.single.tag), 'unauthorized');
    assert.equal(error.retryable, false);
  });

  test('wrong password is unauthorized', async () => {
    const client = new UpstreamClient({ ...endpoint, credentials: { username: upstream.robot.username, password: 'not-the-secret' } }, { logger: pino({ level: 'silent' }) });
    const error = await rejectsWith(client.getManifest(upstream.single.repository, upstream.single.tag), 'unauthorized');
    assert.ok(!error.message.includes('not-the-secret'));
  });

  test('missing tag is not_found', async () => {
    const client = new UpstreamClient(endpoint, { logger: pino({ level: 'silent' }) });
    await rejectsWith(client.getManifest(upstream.single.repository, 'no-such-tag'), 'not_found');
  });
});

describe('UpstreamClient against a fake upstream', () => {
  const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: sha256Digest('{}'), size: 2 }, layers: [] }));
  const manifestDigest = sha256Digest(manifestBytes);
  const otherDigest = sha256Digest('some other manifest');
  const blobBytes = Buffer.from('blob content from the fake upstream\n');
  const blobDigest = sha256Digest(blobBytes);
  const silent = pino({ level: 'silent' });
  let fake: FakeUpstream;
  let tokenRequests: URL[] = [];

  before(async () => {
    fake = await startFakeUpstream((request, response, origin) => {
      const url = new URL(request.url ?? '/', origin);
      const path = url.pathname;
      if (path === '/token') {
        tokenRequests.push(url);
        if (request.headers.authorization !== `Basic ${Buffer.from('user:s3cret-password').toString('base64')}`) {
          response.writeHead(401).end();
          return;
        }
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'tok3n-value', expires_in: 300 }));
        return;
      }
      if (path === '/redirecting-token') {
        response.writeHead(302, { location: '/token' }).end();
        return;
      }
      if (path.startsWith('/v2/bearer/')) {
        if (request.headers.authorization !== 'Bearer tok3n-value') {
          response.writeHead(401, { 'www-authenticate': `Bearer realm="${origin}/token",service="fake",scope="repository:bearer:pull"` }).end();
          return;
        }
        response.writeHead(200, { 'content-type': MediaType.ociManifest }).end(manifestBytes);
        return;
      }
      if (path.startsWith('/v2/token-redirect/')) {
        response.writeHead(401, { 'www-authenticate': `Bearer realm="${origin}/redirecting-token",service="fake"` }).end();
        return;
      }
      if (path.startsWith('/v2/foreign-realm/')) {
        response.writeHead(401, { 'www-authenticate': 'Bearer realm="http://127.0.0.1:9/token",service="fake"' }).end();
        return;
      }
      if (path.startsWith('/v2/basic/')) {
        if (request.headers.authorization !== `Basic ${Buffer.from('user:s3cret-password').toString('base64')}`) {
          response.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' }).end();
          return;
        }
        response.writeHead(200, { 'content-type': MediaType.ociManifest }).end(manifestBytes);
        return;
      }
      if (path === `/v2/lying/manifests/${otherDigest}`) {
        response.writeHead(200, { 'content-type': MediaType.ociManifest }).end(manifestBytes);
        return;
      }
      if (path === '/v2/lying/manifests/v1') {
        response.writeHead(200, { 'content-type': MediaType.ociManifest, 'docker-content-digest': otherDigest }).end(manifestBytes);
        return;
      }
      if (path === `/v2/lying/blobs/${blobDigest}`) {
        response.writeHead(200, { 'content-length': String(blobBytes.length) }).end(Buffer.alloc(blobBytes.length, 'x'));
        return;
      }
      if (path === `/v2/long/blobs/${blobDigest}`) {
        response.writeHead(200).end(Buffer.concat([blobBytes, Buffer.from('trailing bytes')]));
        return;
      }
      if (path === '/v2/redirect/manifests/v1') {
        response.writeHead(307, { location: '/v2/plain/manifests/v1' }).end();
        return;
      }
      if (path === `/v2/redirect/blobs/${blobDigest}`) {
        response.writeHead(307, { location: `/cdn/${blobDigest}?signature=abc` }).end();
        return;
      }
      if (path === `/cdn/${blobDigest}`) {
        response.writeHead(200, { 'content-length': String(blobBytes.length) }).end(blobBytes);
        return;
      }
      if (path === '/v2/silent/manifests/v1') return; // never answers
      if (path === '/v2/plain/manifests/v1') {
        response.writeHead(200, { 'content-type': MediaType.ociManifest }).end(manifestBytes);
        return;
      }
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'unknown' }] }));
    });
  });
  after(async () => {
    await fake?.close();
  });

  function clientFor(credentials: UpstreamEndpoint['credentials'] = null, logger: pino.Logger = silent, timeouts: { requestTimeoutMs?: number } = {}): UpstreamClient {
    return new UpstreamClient({ host: fake.host, scheme: 'http', credentials }, { logger, ...timeouts });
  }

  test('manifest bytes that miss the requested digest fail', async () => {
    const error = await rejectsWith(clientFor().getManifest('lying', otherDigest), 'digest_mismatch');
    assert.equal(error.retryable, false);
    assert.match(error.message, new RegExp(manifestDigest));
  });

  test('Docker-Content-Digest that misses the bytes fails', async () => {
    await rejectsWith(clientFor().getManifest('lying', 'v1'), 'digest_mismatch');
  });

  test('blob bytes that miss their digest fail the stream', async () => {
    const stream = await clientFor().openBlob('lying', { digest: blobDigest, size: blobBytes.length });
    await rejectsWith(readAll(stream), 'digest_mismatch');
  });

  test('blob longer than its descriptor fails the stream', async () => {
    const stream = await clientFor().openBlob('long', { digest: blobDigest, size: blobBytes.length });
    await rejectsWith(readAll(stream), 'digest_mismatch');
  });

  test('Bearer flow sends Basic to the realm and the token to the registry', async () => {
    tokenRequests = [];
    const { logger, lines } = capturingLogger();
    const client = clientFor({ username: 'user', password: 's3cret-password' }, logger);

    const manifest = await client.getManifest('bearer', 'v1');
    await client.getManifest('bearer', 'v1');

    assert.equal(manifest.digest, manifestDigest);
    assert.equal(tokenRequests.length, 1, 'the second request reuses the token');
    assert.equal(tokenRequests[0]?.searchParams.get('service'), 'fake');
    assert.equal(tokenRequests[0]?.searchParams.get('scope'), 'repository:bearer:pull');
    const logged = lines.join('');
    assert.ok(!logged.includes('s3cret-password'), 'the password was logged');
    assert.ok(!logged.includes('tok3n-value'), 'the token was logged');
  });

  test('Bearer flow with wrong credentials is unauthorized', async () => {
    const error = await rejectsWith(clientFor({ username: 'user', password: 'wrong' }).getManifest('bearer', 'v1'), 'unauthorized');
    assert.ok(!error.message.includes('wrong'));
  });

  test('Basic challenge is answered with the credentials', async () => {
    const manifest = await clientFor({ username: 'user', password: 's3cret-password' }).getManifest('basic', 'v1');
    assert.equal(manifest.digest, manifestDigest);
  });

  test('Basic challenge without credentials is unauthorized', async () => {
    await rejectsWith(clientFor().getManifest('basic', 'v1'), 'unauthorized');
  });

  test('blob redirect is followed and logged', async () => {
    const { logger, lines } = capturingLogger();
    const stream = await clientFor(null, logger).openBlob('redirect', { digest: blobDigest, size: blobBytes.length });
    assert.deepEqual(await readAll(stream), blobBytes);

    const redirectLines = lines.map((line) => JSON.parse(line) as { msg: string; hop?: number; to?: string }).filter((line) => line.msg === 'following a blob redirect from the upstream');
    assert.equal(redirectLines.length, 1);
    assert.equal(redirectLines[0]?.to, fake.url);
    assert.ok(!lines.join('').includes('signature=abc'), 'the redirect query string was logged');
  });

  test('manifest redirect is an error', async () => {
    const before = fake.requests.length;
    await rejectsWith(clientFor().getManifest('redirect', 'v1'), 'redirect');
    assert.ok(!fake.requests.slice(before).some((request) => request.url.startsWith('/v2/plain/')), 'the redirect was followed');
  });

  test('token redirect is an error', async () => {
    await rejectsWith(clientFor({ username: 'user', password: 's3cret-password' }).getManifest('token-redirect', 'v1'), 'redirect');
  });

  test('plain HTTP realm on another origin is refused', async () => {
    await rejectsWith(clientFor({ username: 'user', password: 's3cret-password' }).getManifest('foreign-realm', 'v1'), 'invalid_response');
  });

  test('unanswered request times out', async () => {
    const error = await rejectsWith(clientFor(null, silent, { requestTimeoutMs: 300 }).getManifest('silent', 'v1'), 'timeout');
    assert.equal(error.retryable, true);
  });

  test('unknown repository is not_found with its code', async () => {
    const error = await rejectsWith(clientFor().getManifest('missing', 'v1'), 'not_found');
    assert.match(error.message, /NAME_UNKNOWN/);
  });

});
