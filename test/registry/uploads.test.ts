import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { s3Skip, startTestServer, type TestServer } from '../helpers/server.js';
import { assertOciError, digestOf, pathOf, RegistryClient, uniqueContent, uniqueRepository } from '../helpers/registry-client.js';
import { StorageNotFoundError, type UploadState } from '../../src/storage/blob-store.js';
import { uploadKey } from '../../src/storage/keys.js';

const EMPTY_SHA256 = digestOf('');
const MIB = 1024 * 1024;

/** Polls `check` every 20 ms until it returns true, failing after 10 s. */
async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function leaseTokenOf(server: TestServer, id: string): Promise<string | null> {
  const row: { lease_token: string | null } | undefined = await server.db('upload_sessions').where({ id }).first('lease_token');
  assert.ok(row, `upload session ${id} is gone`);
  return row.lease_token;
}

/**
 * Sends a PATCH whose Content-Length promises more bytes than it carries,
 * waits until the server holds the session's lease, then closes the socket
 * and waits until the server has released the lease again.
 */
async function sendTruncatedPatch(server: TestServer, location: string, id: string, declaredLength: number, bytes: Buffer): Promise<void> {
  const socket = net.connect(Number(new URL(server.url).port), '127.0.0.1');
  await once(socket, 'connect');
  socket.write(`PATCH ${location} HTTP/1.1\r\nHost: ${server.host}\r\nAuthorization: ${server.adminAuthorization}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declaredLength}\r\n\r\n`);
  await new Promise<void>((resolve, reject) => socket.write(bytes, (error) => (error ? reject(error) : resolve())));
  await waitFor('the server to lease the session', async () => (await leaseTokenOf(server, id)) !== null);
  socket.destroy();
  await waitFor('the server to release the session', async () => (await leaseTokenOf(server, id)) === null);
}

async function storeStateOf(server: TestServer, id: string): Promise<UploadState> {
  const row: { store_state: UploadState } | undefined = await server.db('upload_sessions').where({ id }).first('store_state');
  assert.ok(row, `upload session ${id} is gone`);
  return row.store_state;
}

/**
 * Asserts that no staged byte of an upload is left: no object under the
 * session's key, and no readable upload behind its old store state (an S3
 * multipart upload is not listed as an object).
 */
async function assertStagedBytesRemoved(server: TestServer, id: string, state: UploadState): Promise<void> {
  const keys: string[] = [];
  for await (const { key } of server.store.list(uploadKey(id))) keys.push(key);
  assert.deepEqual(keys, []);
  await assert.rejects(server.store.readUpload(state), StorageNotFoundError);
}

for (const storage of ['filesystem', 's3'] as const) {
  describe(`uploads on ${storage} storage`, { skip: storage === 's3' ? s3Skip : false }, () => {
    let server: TestServer;
    let client: RegistryClient;

    before(async () => {
      server = await startTestServer({ storage });
      client = new RegistryClient(server.url, server.admin);
    });
    after(() => server.close());

    describe('monolithic upload', () => {
      test('returns 201 for POST ?digest= with a body', async () => {
        const content = uniqueContent('monolithic');
        const response = await client.http.post(`/v2/${uniqueRepository('mono')}/blobs/uploads/?digest=${digestOf(content)}`).set('Content-Type', 'application/octet-stream').send(content);
        assert.equal(response.status, 201);
      });

      test('sends the blob Location after POST ?digest=', async () => {
        const repository = uniqueRepository('mono');
        const content = uniqueContent('monolithic');
        const response = await client.http.post(`/v2/${repository}/blobs/uploads/?digest=${digestOf(content)}`).set('Content-Type', 'application/octet-stream').send(content);
        assert.equal(pathOf(response.headers.location), `/v2/${repository}/blobs/${digestOf(content)}`);
      });

      test('sends Docker-Content-Digest after POST ?digest=', async () => {
        const content = uniqueContent('monolithic');
        const response = await client.http.post(`/v2/${uniqueRepository('mono')}/blobs/uploads/?digest=${digestOf(content)}`).set('Content-Type', 'application/octet-stream').send(content);
        assert.equal(response.headers['docker-content-digest'], digestOf(content));
      });

      test('stores the bytes of POST ?digest=', async () => {
        const repository = uniqueRepository('mono');
        const content = uniqueContent('monolithic');
        await client.pushBlob(repository, content);
        const response = await client.getBytes(`/v2/${repository}/blobs/${digestOf(content)}`);
        assert.deepEqual(response.body, content);
      });

      test('returns 201 for POST then PUT ?digest= with the body', async () => {
        const repository = uniqueRepository('post-put');
        const content = uniqueContent('post-put');
        const { location } = await client.startUpload(repository);
        const response = await client.finishUpload(location, digestOf(content), content);
        assert.equal(response.status, 201);
      });

      test('stores the bytes of POST then PUT', async () => {
        const repository = uniqueRepository('post-put');
        const content = uniqueContent('post-put');
        const { location } = await client.startUpload(repository);
        await client.finishUpload(location, digestOf(content), content);
        const response = await client.getBytes(`/v2/${repository}/blobs/${digestOf(content)}`);
        assert.deepEqual(response.body, content);
      });

      test('returns 400 BLOB_UPLOAD_INVALID for a POST body without digest', async () => {
        const response = await client.http.post(`/v2/${uniqueRepository('mono')}/blobs/uploads/`).set('Content-Type', 'application/octet-stream').send(Buffer.from('body'));
        assertOciError(response, 400, 'BLOB_UPLOAD_INVALID');
      });

      test('returns 400 DIGEST_INVALID for PUT without digest', async () => {
        const { location } = await client.startUpload(uniqueRepository('put'));
        const response = await client.http.put(location);
        assertOciError(response, 400, 'DIGEST_INVALID');
      });
    });

    describe('chunked upload', () => {
      test('returns 202 for PATCH', async () => {
        const { location } = await client.startUpload(uniqueRepository('chunked'));
        const response = await client.patchChunk(location, 'hello');
        assert.equal(response.status, 202);
      });

      test('sends the session Location after PATCH', async () => {
        const repository = uniqueRepository('chunked');
        const { location, id } = await client.startUpload(repository);
        const response = await client.patchChunk(location, 'hello');
        assert.equal(pathOf(response.headers.location), `/v2/${repository}/blobs/uploads/${id}`);
      });

      test('sends Docker-Upload-UUID after PATCH', async () => {
        const { location, id } = await client.startUpload(uniqueRepository('chunked'));
        const response = await client.patchChunk(location, 'hello');
        assert.equal(response.headers['docker-upload-uuid'], id);
      });

      test('sends a Range that covers every chunk so far', async () => {
        const { location } = await client.startUpload(uniqueRepository('chunked'));
        await client.patchChunk(location, 'hello');
        const response = await client.patchChunk(location, ' world');
        assert.equal(response.headers.range, '0-10');
      });

      test('appends chunks sent with Content-Range', async () => {
        const repository = uniqueRepository('chunked');
        const { location } = await client.startUpload(repository);
        const first = await client.patchChunk(location, 'hello', '0-4');
        const second = await client.patchChunk(pathOf(first.headers.location), ' world', '5-10');
        assert.equal(second.headers.range, '0-10');
      });

      test('accepts the RFC 9110 Content-Range form', async () => {
        const { location } = await client.startUpload(uniqueRepository('chunked'));
        const response = await client.patchChunk(location, 'hello', 'bytes 0-4/*');
        assert.equal(response.status, 202);
      });

      test('stores every chunk when the PUT carries the last one', async () => {
        const repository = uniqueRepository('chunked');
        const { location } = await client.startUpload(repository);
        await client.patchChunk(location, 'first,', '0-5');
        await client.patchChunk(location, 'second,');
        const whole = Buffer.from('first,second,third');
        const put = await client.finishUpload(location, digestOf(whole), 'third');
        assert.equal(put.status, 201);
        const response = await client.getBytes(`/v2/${repository}/blobs/${digestOf(whole)}`);
        assert.deepEqual(response.body, whole);
      });

      test('returns 201 for a PUT without body after the chunks', async () => {
        const { location } = await client.startUpload(uniqueRepository('chunked'));
        await client.patchChunk(location, 'only chunk');
        const response = await client.finishUpload(location, digestOf('only chunk'));
        assert.equal(response.status, 201);
      });

      test('returns 416 when Content-Range skips bytes', async () => {
        const { location } = await client.startUpload(uniqueRepository('chunked'));
        await client.patchChunk(location, 'hello', '0-4');
        const response = await client.patchChunk(location, 'world', '6-10');
        assertOciError(response, 416, 'RANGE_INVALID');
      });

      test('returns 416 when Content-Range repeats bytes', async () => {
        const { location } = await client.startUpload(uniqueRepository('chunked'));
        await client.patchChunk(location, 'hello', '0-4');
        const response = await client.patchChunk(location, 'hello', '0-4');
        assertOciError(response, 416, 'RANGE_INVALID');
      });

      test('keeps the session Range after a 416', async () => {
        const { location } = await client.startUpload(uniqueRepository('chunked'));
        await client.patchChunk(location, 'hello', '0-4');
        await client.patchChunk(location, 'world', '6-10');
        const status = await client.http.get(location);
        assert.equal(status.headers.range, '0-4');
      });

      test('accepts the right chunk after a 416', async () => {
        const repository = uniqueRepository('chunked');
        const { location } = await client.startUpload(repository);
        await client.patchChunk(location, 'hello', '0-4');
        await client.patchChunk(location, 'world', '6-10');
        await client.patchChunk(location, 'world', '5-9');
        const response = await client.finishUpload(location, digestOf('helloworld'));
        assert.equal(response.status, 201);
      });

      test('returns 400 SIZE_INVALID when Content-Range and Content-Length disagree', async () => {
        const { location } = await client.startUpload(uniqueRepository('chunked'));
        const response = await client.patchChunk(location, 'hello', '0-9');
        assertOciError(response, 400, 'SIZE_INVALID');
      });

      test('returns 416 for a malformed Content-Range', async () => {
        const { location } = await client.startUpload(uniqueRepository('chunked'));
        const response = await client.patchChunk(location, 'hello', 'five bytes');
        assertOciError(response, 416, 'RANGE_INVALID');
      });

      test('keeps the old offset when the body is cut short', async () => {
        const repository = uniqueRepository('truncated');
        const { location, id } = await client.startUpload(repository);
        await client.patchChunk(location, 'hello');
        await sendTruncatedPatch(server, location, id, 100, Buffer.from('only forty bytes of the hundred promised'));
        const status = await client.http.get(location);
        assert.equal(status.headers.range, '0-4');
      });

      // Larger than one S3 part (5 MiB), so the S3 store may already have sent a part when the body is cut.
      test('continues at the old offset after a large cut-short body', async () => {
        const repository = uniqueRepository('truncated');
        const first = Buffer.alloc(6 * MIB, 1);
        const second = Buffer.alloc(6 * MIB, 2);
        const { location, id } = await client.startUpload(repository);
        await client.patchChunk(location, first);
        await sendTruncatedPatch(server, location, id, 12 * MIB, Buffer.alloc(7 * MIB, 3));
        await client.patchChunk(location, second, `${6 * MIB}-${12 * MIB - 1}`);
        const whole = Buffer.concat([first, second]);
        await client.finishUpload(location, digestOf(whole));
        const response = await client.getBytes(`/v2/${repository}/blobs/${digestOf(whole)}`);
        assert.ok(whole.equals(response.body as Buffer), 'the stored blob differs from the chunks that were accepted');
      });

      test('continues at the old offset after a cut-short body', async () => {
        const repository = uniqueRepository('truncated');
        const { location, id } = await client.startUpload(repository);
        await client.patchChunk(location, 'hello');
        await sendTruncatedPatch(server, location, id, 100, Buffer.from('partial bytes that must be dropped'));
        await client.patchChunk(location, ' world', '5-10');
        await client.finishUpload(location, digestOf('hello world'));
        const response = await client.getBytes(`/v2/${repository}/blobs/${digestOf('hello world')}`);
        assert.deepEqual(response.body, Buffer.from('hello world'));
      });
    });

    describe('upload session status', () => {
      test('returns 204 for GET on a session', async () => {
        const { location } = await client.startUpload(uniqueRepository('status'));
        const response = await client.http.get(location);
        assert.equal(response.status, 204);
      });

      test('sends the session Location on GET', async () => {
        const repository = uniqueRepository('status');
        const { location, id } = await client.startUpload(repository);
        const response = await client.http.get(location);
        assert.equal(pathOf(response.headers.location), `/v2/${repository}/blobs/uploads/${id}`);
      });

      test('sends the Range of the bytes received on GET', async () => {
        const { location } = await client.startUpload(uniqueRepository('status'));
        await client.patchChunk(location, 'twelve bytes');
        const response = await client.http.get(location);
        assert.equal(response.headers.range, '0-11');
      });

      test('sends Docker-Upload-UUID on GET', async () => {
        const { location, id } = await client.startUpload(uniqueRepository('status'));
        const response = await client.http.get(location);
        assert.equal(response.headers['docker-upload-uuid'], id);
      });

      test('returns 204 for DELETE on a session', async () => {
        const { location } = await client.startUpload(uniqueRepository('cancel'));
        const response = await client.http.delete(location);
        assert.equal(response.status, 204);
      });

      test('returns 404 BLOB_UPLOAD_UNKNOWN after DELETE', async () => {
        const { location } = await client.startUpload(uniqueRepository('cancel'));
        await client.patchChunk(location, 'some bytes');
        await client.http.delete(location);
        const response = await client.http.get(location);
        assertOciError(response, 404, 'BLOB_UPLOAD_UNKNOWN');
      });

      test('removes the staged bytes on DELETE', async () => {
        const { location, id } = await client.startUpload(uniqueRepository('cancel'));
        await client.patchChunk(location, 'some bytes');
        const state = await storeStateOf(server, id);
        await client.http.delete(location);
        await assertStagedBytesRemoved(server, id, state);
      });

      test('returns 404 BLOB_UPLOAD_UNKNOWN for a session of another repository', async () => {
        const { id } = await client.startUpload(uniqueRepository('owner'));
        const response = await client.patchChunk(`/v2/${uniqueRepository('intruder')}/blobs/uploads/${id}`, 'bytes');
        assertOciError(response, 404, 'BLOB_UPLOAD_UNKNOWN');
      });

      test('returns 404 BLOB_UPLOAD_UNKNOWN for GET of a session of another repository', async () => {
        const { id } = await client.startUpload(uniqueRepository('owner'));
        const response = await client.http.get(`/v2/${uniqueRepository('intruder')}/blobs/uploads/${id}`);
        assertOciError(response, 404, 'BLOB_UPLOAD_UNKNOWN');
      });

      test('returns 404 BLOB_UPLOAD_UNKNOWN for a garbage session id', async () => {
        const response = await client.http.get(`/v2/${uniqueRepository('garbage')}/blobs/uploads/not-a-session`);
        assertOciError(response, 404, 'BLOB_UPLOAD_UNKNOWN');
      });

      test('returns 404 BLOB_UPLOAD_UNKNOWN for PATCH to a garbage session id', async () => {
        const response = await client.patchChunk(`/v2/${uniqueRepository('garbage')}/blobs/uploads/00000000-0000-0000-0000-000000000000`, 'bytes');
        assertOciError(response, 404, 'BLOB_UPLOAD_UNKNOWN');
      });

      test('returns 404 BLOB_UPLOAD_UNKNOWN after the session was finished', async () => {
        const { location } = await client.startUpload(uniqueRepository('finished'));
        await client.finishUpload(location, digestOf('done'), 'done');
        const response = await client.http.get(location);
        assertOciError(response, 404, 'BLOB_UPLOAD_UNKNOWN');
      });
    });

    describe('zero-length blobs', () => {
      test('returns 201 for POST ?digest= without a body', async () => {
        const response = await client.http.post(`/v2/${uniqueRepository('empty')}/blobs/uploads/?digest=${EMPTY_SHA256}`);
        assert.equal(response.status, 201);
      });

      test('returns 201 for POST then PUT ?digest= without a body', async () => {
        const { location } = await client.startUpload(uniqueRepository('empty'));
        const response = await client.finishUpload(location, EMPTY_SHA256);
        assert.equal(response.status, 201);
      });

      test('serves a zero-length blob with Content-Length 0', async () => {
        const repository = uniqueRepository('empty');
        await client.pushBlob(repository, Buffer.alloc(0));
        const response = await client.getBytes(`/v2/${repository}/blobs/${EMPTY_SHA256}`);
        assert.equal(response.headers['content-length'], '0');
      });
    });

    describe('digest verification', () => {
      test('returns 201 for a monolithic sha512 upload', async () => {
        const content = uniqueContent('sha512');
        const response = await client.http.post(`/v2/${uniqueRepository('sha512')}/blobs/uploads/?digest=${digestOf(content, 'sha512')}`).set('Content-Type', 'application/octet-stream').send(content);
        assert.equal(response.status, 201);
      });

      test('serves a chunked sha512 upload by its sha512 digest', async () => {
        const repository = uniqueRepository('sha512');
        const { location } = await client.startUpload(repository);
        await client.patchChunk(location, 'first half, ');
        await client.patchChunk(location, 'second half');
        const digest = digestOf('first half, second half', 'sha512');
        await client.finishUpload(location, digest);
        const response = await client.getBytes(`/v2/${repository}/blobs/${digest}`);
        assert.deepEqual(response.body, Buffer.from('first half, second half'));
      });

      test('sends the sha512 digest as Docker-Content-Digest', async () => {
        const repository = uniqueRepository('sha512');
        const content = uniqueContent('sha512');
        await client.pushBlob(repository, content, 'sha512');
        const response = await client.http.head(`/v2/${repository}/blobs/${digestOf(content, 'sha512')}`);
        assert.equal(response.headers['docker-content-digest'], digestOf(content, 'sha512'));
      });

      test('returns 400 DIGEST_INVALID when sha256 does not match', async () => {
        const { location } = await client.startUpload(uniqueRepository('mismatch'));
        const response = await client.finishUpload(location, digestOf('other bytes'), 'these bytes');
        assertOciError(response, 400, 'DIGEST_INVALID');
      });

      test('returns 400 DIGEST_INVALID when sha512 does not match', async () => {
        const { location } = await client.startUpload(uniqueRepository('mismatch'));
        const response = await client.finishUpload(location, digestOf('other bytes', 'sha512'), 'these bytes');
        assertOciError(response, 400, 'DIGEST_INVALID');
      });

      test('returns 400 DIGEST_INVALID when a monolithic upload does not match', async () => {
        const response = await client.http.post(`/v2/${uniqueRepository('mismatch')}/blobs/uploads/?digest=${digestOf('other bytes')}`).set('Content-Type', 'application/octet-stream').send(Buffer.from('these bytes'));
        assertOciError(response, 400, 'DIGEST_INVALID');
      });

      test('keeps a mismatched blob unknown under the claimed digest', async () => {
        const repository = uniqueRepository('mismatch');
        const claimed = digestOf(uniqueContent('claimed'));
        const { location } = await client.startUpload(repository);
        await client.finishUpload(location, claimed, 'these bytes');
        const response = await client.http.get(`/v2/${repository}/blobs/${claimed}`);
        assertOciError(response, 404, 'BLOB_UNKNOWN');
      });

      test('keeps a mismatched sha512 blob unknown under the claimed digest', async () => {
        const repository = uniqueRepository('mismatch');
        const claimed = digestOf(uniqueContent('claimed'), 'sha512');
        const { location } = await client.startUpload(repository);
        await client.finishUpload(location, claimed, 'these bytes');
        const response = await client.http.get(`/v2/${repository}/blobs/${claimed}`);
        assertOciError(response, 404, 'BLOB_UNKNOWN');
      });

      test('cancels the session on a digest mismatch', async () => {
        const { location } = await client.startUpload(uniqueRepository('mismatch'));
        await client.finishUpload(location, digestOf('other bytes'), 'these bytes');
        const response = await client.http.get(location);
        assertOciError(response, 404, 'BLOB_UPLOAD_UNKNOWN');
      });

      test('returns 400 DIGEST_INVALID for an unsupported algorithm', async () => {
        const { location } = await client.startUpload(uniqueRepository('algorithm'));
        const response = await client.finishUpload(location, `md5:${'0'.repeat(32)}`, 'bytes');
        assertOciError(response, 400, 'DIGEST_INVALID');
      });
    });

    describe('stale session purge', () => {
      async function backdate(id: string): Promise<void> {
        await server.db('upload_sessions').where({ id }).update({ updated_at: server.db.raw(`now() - interval '2 days'`) });
      }

      test('removes a backdated session', async () => {
        const { location, id } = await client.startUpload(uniqueRepository('stale'));
        await client.patchChunk(location, 'staged bytes');
        await backdate(id);
        await server.app.uploads.purgeStale(0);
        const response = await client.http.get(location);
        assertOciError(response, 404, 'BLOB_UPLOAD_UNKNOWN');
      });

      test('removes the staged bytes of a backdated session', async () => {
        const { location, id } = await client.startUpload(uniqueRepository('stale'));
        await client.patchChunk(location, 'staged bytes');
        const state = await storeStateOf(server, id);
        await backdate(id);
        await server.app.uploads.purgeStale(0);
        await assertStagedBytesRemoved(server, id, state);
      });

      test('keeps a backdated session that a request holds', async () => {
        const { location, id } = await client.startUpload(uniqueRepository('leased'));
        await backdate(id);
        await server.db('upload_sessions').where({ id }).update({ lease_token: randomUUID(), lease_until: server.db.raw(`now() + interval '1 minute'`) });
        await server.app.uploads.purgeStale(0);
        await server.db('upload_sessions').where({ id }).update({ lease_token: null, lease_until: null });
        const response = await client.http.get(location);
        assert.equal(response.status, 204);
      });

      test('keeps a session younger than the limit', async () => {
        const { location } = await client.startUpload(uniqueRepository('fresh'));
        await server.app.uploads.purgeStale(3600);
        const response = await client.http.get(location);
        assert.equal(response.status, 204);
      });
    });

    describe('cross-repository mount', () => {
      test('returns 201 when the source repository holds the blob', async () => {
        const source = uniqueRepository('source');
        const content = uniqueContent('mounted');
        await client.pushBlob(source, content);
        const response = await client.http.post(`/v2/${uniqueRepository('target')}/blobs/uploads/?mount=${digestOf(content)}&from=${source}`);
        assert.equal(response.status, 201);
      });

      test('sends the blob Location of the target after a mount', async () => {
        const source = uniqueRepository('source');
        const target = uniqueRepository('target');
        const content = uniqueContent('mounted');
        await client.pushBlob(source, content);
        const response = await client.http.post(`/v2/${target}/blobs/uploads/?mount=${digestOf(content)}&from=${source}`);
        assert.equal(pathOf(response.headers.location), `/v2/${target}/blobs/${digestOf(content)}`);
      });

      test('serves a mounted blob from the target', async () => {
        const source = uniqueRepository('source');
        const target = uniqueRepository('target');
        const content = uniqueContent('mounted');
        await client.pushBlob(source, content);
        await client.http.post(`/v2/${target}/blobs/uploads/?mount=${digestOf(content)}&from=${source}`);
        const response = await client.getBytes(`/v2/${target}/blobs/${digestOf(content)}`);
        assert.deepEqual(response.body, content);
      });

      test('returns 202 with a session for an unknown digest', async () => {
        const response = await client.http.post(`/v2/${uniqueRepository('target')}/blobs/uploads/?mount=${digestOf(uniqueContent('nowhere'))}&from=${uniqueRepository('source')}`);
        assert.equal(response.status, 202);
      });

      test('sends a session Location when the digest is unknown', async () => {
        const target = uniqueRepository('target');
        const response = await client.http.post(`/v2/${target}/blobs/uploads/?mount=${digestOf(uniqueContent('nowhere'))}&from=${uniqueRepository('source')}`);
        assert.match(pathOf(response.headers.location), new RegExp(`^/v2/${target}/blobs/uploads/[0-9a-f-]{36}$`));
      });

      test('returns 202 when the source repository lacks the blob', async () => {
        const source = uniqueRepository('source');
        const content = uniqueContent('elsewhere');
        await client.pushBlob(uniqueRepository('holder'), content);
        await client.pushBlob(source, uniqueContent('unrelated'));
        const response = await client.http.post(`/v2/${uniqueRepository('target')}/blobs/uploads/?mount=${digestOf(content)}&from=${source}`);
        assert.equal(response.status, 202);
      });

      test('returns 202 for a mount without from', async () => {
        const content = uniqueContent('no-from');
        await client.pushBlob(uniqueRepository('holder'), content);
        const response = await client.http.post(`/v2/${uniqueRepository('target')}/blobs/uploads/?mount=${digestOf(content)}`);
        assert.equal(response.status, 202);
      });

      test('keeps the blob unknown in the target after a mount without from', async () => {
        const target = uniqueRepository('target');
        const content = uniqueContent('no-from');
        await client.pushBlob(uniqueRepository('holder'), content);
        await client.http.post(`/v2/${target}/blobs/uploads/?mount=${digestOf(content)}`);
        const response = await client.http.get(`/v2/${target}/blobs/${digestOf(content)}`);
        assertOciError(response, 404, 'BLOB_UNKNOWN');
      });

      test('returns 202 when from is not a valid repository name', async () => {
        const content = uniqueContent('bad-from');
        await client.pushBlob(uniqueRepository('holder'), content);
        const response = await client.http.post(`/v2/${uniqueRepository('target')}/blobs/uploads/?mount=${digestOf(content)}&from=Not%00Valid`);
        assert.equal(response.status, 202);
      });

      test('returns 400 DIGEST_INVALID for a malformed mount digest', async () => {
        const response = await client.http.post(`/v2/${uniqueRepository('target')}/blobs/uploads/?mount=sha256:1234&from=${uniqueRepository('source')}`);
        assertOciError(response, 400, 'DIGEST_INVALID');
      });
    });

    describe('Location header', () => {
      const EXTERNAL_HOST = 'registry.example.test:8443';

      test('builds a session Location from the Host header', async () => {
        const response = await client.http.post(`/v2/${uniqueRepository('host')}/blobs/uploads/`).set('Host', EXTERNAL_HOST);
        assert.ok(String(response.headers.location).startsWith(`http://${EXTERNAL_HOST}/v2/`), response.headers.location);
      });

      test('builds a blob Location from the Host header', async () => {
        const content = uniqueContent('host');
        const response = await client.http.post(`/v2/${uniqueRepository('host')}/blobs/uploads/?digest=${digestOf(content)}`).set('Host', EXTERNAL_HOST).set('Content-Type', 'application/octet-stream').send(content);
        assert.ok(String(response.headers.location).startsWith(`http://${EXTERNAL_HOST}/v2/`), response.headers.location);
      });

      test('builds a PATCH Location from the Host header', async () => {
        const { location } = await client.startUpload(uniqueRepository('host'));
        const response = await client.http.patch(location).set('Host', EXTERNAL_HOST).set('Content-Type', 'application/octet-stream').send(Buffer.from('bytes'));
        assert.ok(String(response.headers.location).startsWith(`http://${EXTERNAL_HOST}/v2/`), response.headers.location);
      });

      test('ignores X-Forwarded-Host without a trusted proxy', async () => {
        const response = await client.http.post(`/v2/${uniqueRepository('forwarded')}/blobs/uploads/`).set('X-Forwarded-Host', 'attacker.example.test').set('X-Forwarded-Proto', 'https');
        assert.ok(String(response.headers.location).startsWith(`${server.url}/v2/`), response.headers.location);
      });

      test('ignores X-Forwarded-Proto without a trusted proxy', async () => {
        const response = await client.http.post(`/v2/${uniqueRepository('forwarded')}/blobs/uploads/`).set('Host', EXTERNAL_HOST).set('X-Forwarded-Proto', 'https');
        assert.ok(String(response.headers.location).startsWith(`http://${EXTERNAL_HOST}/v2/`), response.headers.location);
      });
    });
  });
}
