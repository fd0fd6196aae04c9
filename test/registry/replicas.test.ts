import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { s3Skip, startTestServer, type TestServer } from '../helpers/server.js';
import { assertOciError, digestOf, RegistryClient, uniqueContent, uniqueRepository } from '../helpers/registry-client.js';

const MIB = 1024 * 1024;

// Two app instances on one database and one storage, as two replicas behind a load balancer.
for (const storage of ['filesystem', 's3'] as const) {
  describe(`upload across two instances on ${storage} storage`, { skip: storage === 's3' ? s3Skip : false }, () => {
    let first: TestServer;
    let second: TestServer;
    let firstClient: RegistryClient;
    let secondClient: RegistryClient;

    before(async () => {
      first = await startTestServer({ storage });
      second = await startTestServer({ shareWith: first });
      firstClient = new RegistryClient(first.url, first.admin);
      secondClient = new RegistryClient(second.url, second.admin);
    });
    after(async () => {
      await second.close();
      await first.close();
    });

    test('returns 202 for PATCH on the instance that did not start the session', async () => {
      const { location } = await firstClient.startUpload(uniqueRepository('replica'));
      const response = await secondClient.patchChunk(location, 'bytes');
      assert.equal(response.status, 202);
    });

    test('returns 201 for PUT on the first instance after PATCH on the second', async () => {
      const content = uniqueContent('replica');
      const { location } = await firstClient.startUpload(uniqueRepository('replica'));
      await secondClient.patchChunk(location, content);
      const response = await firstClient.finishUpload(location, digestOf(content));
      assert.equal(response.status, 201);
    });

    test('serves the blob from the first instance', async () => {
      const repository = uniqueRepository('replica');
      const content = uniqueContent('replica');
      const { location } = await firstClient.startUpload(repository);
      await secondClient.patchChunk(location, content);
      await firstClient.finishUpload(location, digestOf(content));
      const response = await firstClient.getBytes(`/v2/${repository}/blobs/${digestOf(content)}`);
      assert.deepEqual(response.body, content);
    });

    test('serves the blob from the second instance', async () => {
      const repository = uniqueRepository('replica');
      const content = uniqueContent('replica');
      const { location } = await firstClient.startUpload(repository);
      await secondClient.patchChunk(location, content);
      await firstClient.finishUpload(location, digestOf(content));
      const response = await secondClient.getBytes(`/v2/${repository}/blobs/${digestOf(content)}`);
      assert.deepEqual(response.body, content);
    });

    test('reports the Range of a chunk sent to the other instance', async () => {
      const { location } = await firstClient.startUpload(uniqueRepository('replica'));
      await secondClient.patchChunk(location, 'nine byte');
      const response = await firstClient.http.get(location);
      assert.equal(response.headers.range, '0-8');
    });

    // The first chunk leaves only a finished sha256; the second instance must
    // rebuild a resumable hash from the stored bytes before it appends.
    test('verifies sha256 when the second chunk arrives on the other instance', async () => {
      const repository = uniqueRepository('resumable');
      const { location } = await firstClient.startUpload(repository);
      await firstClient.patchChunk(location, 'first chunk, ', '0-12');
      await secondClient.patchChunk(location, 'second chunk, ', '13-26');
      await firstClient.patchChunk(location, 'third chunk', '27-37');
      const response = await secondClient.finishUpload(location, digestOf('first chunk, second chunk, third chunk'));
      assert.equal(response.status, 201);
    });

    test('stores every chunk when chunks alternate between instances', async () => {
      const repository = uniqueRepository('resumable');
      const whole = 'first chunk, second chunk, third chunk';
      const { location } = await firstClient.startUpload(repository);
      await firstClient.patchChunk(location, 'first chunk, ');
      await secondClient.patchChunk(location, 'second chunk, ');
      await firstClient.finishUpload(location, digestOf(whole), 'third chunk');
      const response = await secondClient.getBytes(`/v2/${repository}/blobs/${digestOf(whole)}`);
      assert.deepEqual(response.body, Buffer.from(whole));
    });

    // Each chunk is larger than one S3 part (5 MiB), so parts as well as tails pass between instances.
    test('stores chunks larger than an S3 part that alternate between instances', async () => {
      const repository = uniqueRepository('large');
      const chunks = [Buffer.alloc(6 * MIB, 'a'), Buffer.alloc(5 * MIB + 3, 'b'), Buffer.alloc(7 * MIB, 'c')];
      const whole = Buffer.concat(chunks);
      const { location } = await firstClient.startUpload(repository);
      await secondClient.patchChunk(location, chunks[0] as Buffer);
      await firstClient.patchChunk(location, chunks[1] as Buffer);
      await secondClient.finishUpload(location, digestOf(whole), chunks[2] as Buffer);
      const response = await firstClient.getBytes(`/v2/${repository}/blobs/${digestOf(whole)}`);
      assert.ok(whole.equals(response.body as Buffer), 'the stored blob differs from the chunks sent');
    });

    test('returns 400 DIGEST_INVALID for a wrong digest after chunks on both instances', async () => {
      const { location } = await firstClient.startUpload(uniqueRepository('resumable'));
      await firstClient.patchChunk(location, 'first chunk, ');
      await secondClient.patchChunk(location, 'second chunk');
      const response = await firstClient.finishUpload(location, digestOf('first chunk, second chunk, and more'));
      assertOciError(response, 400, 'DIGEST_INVALID');
    });

    test('verifies sha512 after chunks on both instances', async () => {
      const repository = uniqueRepository('resumable');
      const { location } = await firstClient.startUpload(repository);
      await firstClient.patchChunk(location, 'first chunk, ');
      await secondClient.patchChunk(location, 'second chunk');
      const response = await firstClient.finishUpload(location, digestOf('first chunk, second chunk', 'sha512'));
      assert.equal(response.status, 201);
    });

    test('returns 404 BLOB_UPLOAD_UNKNOWN on one instance after DELETE on the other', async () => {
      const { location } = await firstClient.startUpload(uniqueRepository('replica'));
      await secondClient.http.delete(location);
      const response = await firstClient.http.get(location);
      assertOciError(response, 404, 'BLOB_UPLOAD_UNKNOWN');
    });
  });
}
