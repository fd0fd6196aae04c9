import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { s3Skip, startTestServer, type TestServer } from '../helpers/server.js';
import { assertOciError, blobOf, digestOf, MEDIA, ociImageManifest, RegistryClient, uniqueContent, uniqueRepository } from '../helpers/registry-client.js';

for (const storage of ['filesystem', 's3'] as const) {
  describe(`blobs on ${storage} storage`, { skip: storage === 's3' ? s3Skip : false }, () => {
    let server: TestServer;
    let client: RegistryClient;

    before(async () => {
      server = await startTestServer({ storage });
      client = new RegistryClient(server.url, server.admin);
    });
    after(() => server.close());

    /** Pushes ten known bytes to a new repository and returns the blob's path. */
    async function pushTenBytes(): Promise<{ repository: string; path: string; content: Buffer }> {
      const repository = uniqueRepository('blobs');
      const content = Buffer.from('0123456789');
      await client.pushBlob(repository, content);
      return { repository, path: `/v2/${repository}/blobs/${digestOf(content)}`, content };
    }

    describe('GET and HEAD blob', () => {
      test('returns 200 with the bytes on GET', async () => {
        const { path, content } = await pushTenBytes();
        const response = await client.getBytes(path);
        assert.equal(response.status, 200);
        assert.deepEqual(response.body, content);
      });

      test('sends Content-Length on GET', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path);
        assert.equal(response.headers['content-length'], '10');
      });

      test('sends Docker-Content-Digest on GET', async () => {
        const { path, content } = await pushTenBytes();
        const response = await client.getBytes(path);
        assert.equal(response.headers['docker-content-digest'], digestOf(content));
      });

      test('sends Content-Type application/octet-stream on GET', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path);
        assert.equal(response.headers['content-type'], 'application/octet-stream');
      });

      test('returns 200 on HEAD', async () => {
        const { path } = await pushTenBytes();
        const response = await client.http.head(path);
        assert.equal(response.status, 200);
      });

      test('sends Content-Length on HEAD', async () => {
        const { path } = await pushTenBytes();
        const response = await client.http.head(path);
        assert.equal(response.headers['content-length'], '10');
      });

      test('sends Docker-Content-Digest on HEAD', async () => {
        const { path, content } = await pushTenBytes();
        const response = await client.http.head(path);
        assert.equal(response.headers['docker-content-digest'], digestOf(content));
      });

      test('sends Content-Type application/octet-stream on HEAD', async () => {
        const { path } = await pushTenBytes();
        const response = await client.http.head(path);
        assert.equal(response.headers['content-type'], 'application/octet-stream');
      });

      test('returns 404 BLOB_UNKNOWN for a digest never pushed', async () => {
        const response = await client.http.get(`/v2/${uniqueRepository('blobs')}/blobs/${digestOf(uniqueContent('never'))}`);
        assertOciError(response, 404, 'BLOB_UNKNOWN');
      });

      test('returns 404 on HEAD of an unknown blob', async () => {
        const response = await client.http.head(`/v2/${uniqueRepository('blobs')}/blobs/${digestOf(uniqueContent('never'))}`);
        assert.equal(response.status, 404);
      });

      test('returns 404 BLOB_UNKNOWN in a repository that the blob was not pushed to', async () => {
        const { content } = await pushTenBytes();
        const response = await client.http.get(`/v2/${uniqueRepository('other')}/blobs/${digestOf(content)}`);
        assertOciError(response, 404, 'BLOB_UNKNOWN');
      });
    });

    describe('blob ranges', () => {
      test('returns 206 for a range of the first bytes', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path, { Range: 'bytes=0-3' });
        assert.equal(response.status, 206);
      });

      test('sends the first bytes for bytes=0-3', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path, { Range: 'bytes=0-3' });
        assert.deepEqual(response.body, Buffer.from('0123'));
      });

      test('sends Content-Range for bytes=0-3', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path, { Range: 'bytes=0-3' });
        assert.equal(response.headers['content-range'], 'bytes 0-3/10');
      });

      test('sends the range length as Content-Length', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path, { Range: 'bytes=0-3' });
        assert.equal(response.headers['content-length'], '4');
      });

      test('sends the last bytes for the suffix range bytes=-3', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path, { Range: 'bytes=-3' });
        assert.deepEqual(response.body, Buffer.from('789'));
      });

      test('sends Content-Range for the suffix range bytes=-3', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path, { Range: 'bytes=-3' });
        assert.equal(response.headers['content-range'], 'bytes 7-9/10');
      });

      test('sends the rest for the open range bytes=5-', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path, { Range: 'bytes=5-' });
        assert.deepEqual(response.body, Buffer.from('56789'));
      });

      test('sends Content-Range for the open range bytes=5-', async () => {
        const { path } = await pushTenBytes();
        const response = await client.getBytes(path, { Range: 'bytes=5-' });
        assert.equal(response.headers['content-range'], 'bytes 5-9/10');
      });

      test('returns 416 for a range past the end', async () => {
        const { path } = await pushTenBytes();
        const response = await client.http.get(path).set('Range', 'bytes=10-20');
        assertOciError(response, 416, 'RANGE_INVALID');
      });

      test('sends the blob size in Content-Range with a 416', async () => {
        const { path } = await pushTenBytes();
        const response = await client.http.get(path).set('Range', 'bytes=10-20');
        assert.equal(response.headers['content-range'], 'bytes */10');
      });
    });

    describe('DELETE blob', () => {
      test('returns 202', async () => {
        const { path } = await pushTenBytes();
        const response = await client.http.delete(path);
        assert.equal(response.status, 202);
      });

      test('returns 404 BLOB_UNKNOWN after DELETE', async () => {
        const { path } = await pushTenBytes();
        await client.http.delete(path);
        const response = await client.http.get(path);
        assertOciError(response, 404, 'BLOB_UNKNOWN');
      });

      test('returns 404 BLOB_UNKNOWN when deleting twice', async () => {
        const { path } = await pushTenBytes();
        await client.http.delete(path);
        const response = await client.http.delete(path);
        assertOciError(response, 404, 'BLOB_UNKNOWN');
      });

      test('keeps a mounted blob in the other repository', async () => {
        const source = uniqueRepository('source');
        const target = uniqueRepository('target');
        const content = uniqueContent('shared');
        await client.pushBlob(source, content);
        await client.http.post(`/v2/${target}/blobs/uploads/?mount=${digestOf(content)}&from=${source}`);
        await client.http.delete(`/v2/${source}/blobs/${digestOf(content)}`);
        const response = await client.getBytes(`/v2/${target}/blobs/${digestOf(content)}`);
        assert.deepEqual(response.body, content);
      });

      test('keeps the source blob when the mounted copy is deleted', async () => {
        const source = uniqueRepository('source');
        const target = uniqueRepository('target');
        const content = uniqueContent('shared');
        await client.pushBlob(source, content);
        await client.http.post(`/v2/${target}/blobs/uploads/?mount=${digestOf(content)}&from=${source}`);
        await client.http.delete(`/v2/${target}/blobs/${digestOf(content)}`);
        const response = await client.getBytes(`/v2/${source}/blobs/${digestOf(content)}`);
        assert.deepEqual(response.body, content);
      });

      test('returns 409 DENIED for a blob that a manifest references', async () => {
        const repository = uniqueRepository('referenced');
        const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
        const layer = blobOf(uniqueContent('layer'));
        await client.pushBlobs(repository, [config, layer]);
        await client.pushManifest(repository, 'latest', ociImageManifest(config.descriptor, [layer.descriptor]));
        const response = await client.http.delete(`/v2/${repository}/blobs/${layer.descriptor.digest}`);
        assertOciError(response, 409, 'DENIED');
      });

      test('keeps a referenced blob readable after the refused DELETE', async () => {
        const repository = uniqueRepository('referenced');
        const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
        const layer = blobOf(uniqueContent('layer'));
        await client.pushBlobs(repository, [config, layer]);
        await client.pushManifest(repository, 'latest', ociImageManifest(config.descriptor, [layer.descriptor]));
        await client.http.delete(`/v2/${repository}/blobs/${config.descriptor.digest}`);
        const response = await client.http.head(`/v2/${repository}/blobs/${config.descriptor.digest}`);
        assert.equal(response.status, 200);
      });

      test('returns 202 for a formerly referenced blob after its manifest is deleted', async () => {
        const repository = uniqueRepository('referenced');
        const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
        const layer = blobOf(uniqueContent('layer'));
        await client.pushBlobs(repository, [config, layer]);
        const manifest = await client.pushManifest(repository, 'latest', ociImageManifest(config.descriptor, [layer.descriptor]));
        await client.http.delete(`/v2/${repository}/manifests/${manifest.digest}`);
        const response = await client.http.delete(`/v2/${repository}/blobs/${layer.descriptor.digest}`);
        assert.equal(response.status, 202);
      });
    });
  });
}
