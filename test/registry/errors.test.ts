import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Response } from 'supertest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { assertOciError, blobOf, digestOf, manifestFromText, MEDIA, ociImageManifest, RegistryClient, uniqueContent, uniqueRepository } from '../helpers/registry-client.js';
import { blobKey } from '../../src/storage/keys.js';

/**
 * Error codes of the OCI Distribution Specification v1.1, plus the Docker
 * Registry HTTP API v2 codes that OCI clients also understand.
 */
const SPEC_CODES = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
  'RANGE_INVALID',
  'TAG_INVALID',
  'PAGINATION_NUMBER_INVALID',
  'UNAVAILABLE',
  'UNKNOWN',
]);

/** Text that must never reach a client: storage keys, filesystem paths, stack frames and SQL. */
const FORBIDDEN = ['blobs/sha256/', 'uploads/', '/tmp/', '/work/', '    at ', 'select ', 'insert into'];

let server: TestServer;
let client: RegistryClient;

before(async () => {
  server = await startTestServer();
  client = new RegistryClient(server.url, server.admin);
});
after(() => server.close());

/** Pushes an image and returns its repository and layer digest, for the cases that need stored content. */
async function pushedRepository(): Promise<{ repository: string; layerDigest: string }> {
  const repository = uniqueRepository('errors');
  const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
  const layer = blobOf(uniqueContent('layer'));
  await client.pushBlobs(repository, [config, layer]);
  await client.pushManifest(repository, 'latest', ociImageManifest(config.descriptor, [layer.descriptor]));
  return { repository, layerDigest: layer.descriptor.digest };
}

/** Requests that each end in an error, with the status each must get. */
const CASES: Array<{ label: string; status: number; send(): Promise<Response> }> = [
  { label: 'an unknown blob', status: 404, send: () => client.http.get(`/v2/${uniqueRepository('errors')}/blobs/${digestOf(uniqueContent('never'))}`) },
  { label: 'an unknown manifest', status: 404, send: () => client.http.get(`/v2/${uniqueRepository('errors')}/manifests/latest`) },
  { label: 'a malformed digest', status: 400, send: () => client.http.get(`/v2/${uniqueRepository('errors')}/blobs/sha256:1234`) },
  { label: 'malformed manifest JSON', status: 400, send: () => client.putManifest(uniqueRepository('errors'), 'latest', manifestFromText('{"schemaVersion":', MEDIA.ociManifest)) },
  {
    label: 'a manifest with a missing blob',
    status: 400,
    send: () => client.putManifest(uniqueRepository('errors'), 'latest', ociImageManifest(blobOf(uniqueContent('config'), MEDIA.ociConfig).descriptor, [])),
  },
  {
    label: 'a chunk at the wrong offset',
    status: 416,
    send: async () => {
      const { location } = await client.startUpload(uniqueRepository('errors'));
      return client.patchChunk(location, 'bytes', '7-11');
    },
  },
  {
    label: 'a digest mismatch',
    status: 400,
    send: async () => {
      const { location } = await client.startUpload(uniqueRepository('errors'));
      return client.finishUpload(location, digestOf('something else'), 'bytes');
    },
  },
  { label: 'an unknown upload session', status: 404, send: () => client.http.get(`/v2/${uniqueRepository('errors')}/blobs/uploads/5b4a3f0e-1111-4222-8333-944455556666`) },
  { label: 'an invalid repository name', status: 400, send: () => client.http.get('/v2/Invalid/Name/tags/list') },
  { label: 'an invalid tag', status: 400, send: () => client.http.get(`/v2/${uniqueRepository('errors')}/manifests/.tag`) },
  { label: 'an unknown repository', status: 404, send: () => client.http.get(`/v2/${uniqueRepository('errors')}/tags/list`) },
  { label: 'a garbage page size', status: 400, send: () => client.http.get('/v2/_catalog?n=lots') },
  { label: 'an unknown /v2 path', status: 404, send: () => client.http.get('/v2/not/an/endpoint') },
  { label: 'a wrong method', status: 405, send: () => client.http.post(`/v2/${uniqueRepository('errors')}/tags/list`) },
  {
    label: 'an oversized manifest',
    status: 413,
    send: () => client.putManifest(uniqueRepository('errors'), 'latest', manifestFromText(JSON.stringify({ schemaVersion: 2, padding: 'x'.repeat(4 * 1024 * 1024) }), MEDIA.ociManifest)),
  },
  {
    label: 'a referenced blob delete',
    status: 409,
    send: async () => {
      const { repository, layerDigest } = await pushedRepository();
      return client.http.delete(`/v2/${repository}/blobs/${layerDigest}`);
    },
  },
  {
    label: 'a blob whose bytes are gone from storage',
    status: 404,
    send: async () => {
      const repository = uniqueRepository('errors');
      const content = uniqueContent('vanished');
      await client.pushBlob(repository, content);
      await server.store.delete(blobKey(digestOf(content)));
      return client.http.get(`/v2/${repository}/blobs/${digestOf(content)}`);
    },
  },
  {
    label: 'a storage failure',
    status: 500,
    send: async () => {
      const repository = uniqueRepository('errors');
      const content = uniqueContent('storage-failure');
      await client.pushBlob(repository, content);
      const read = server.store.read;
      const key = blobKey(digestOf(content));
      server.store.read = async () => {
        const error = new Error(`EIO: i/o error, open '/tmp/portcullis-test-x/${key}'`);
        error.stack = `${error.message}\n    at read (/work/main/src/storage/filesystem-store.ts:1:1)`;
        throw error;
      };
      try {
        return await client.http.get(`/v2/${repository}/blobs/${digestOf(content)}`);
      } finally {
        server.store.read = read;
      }
    },
  },
  {
    label: 'a database failure',
    status: 500,
    send: async () => {
      const repository = uniqueRepository('errors');
      await client.pushImage(repository, 'latest');
      await server.db.raw('alter table tags rename to tags_hidden');
      try {
        return await client.http.get(`/v2/${repository}/tags/list`);
      } finally {
        await server.db.raw('alter table tags_hidden rename to tags');
      }
    },
  },
];

describe('error bodies', () => {
  for (const errorCase of CASES) {
    describe(errorCase.label, () => {
      let response: Response;

      before(async () => {
        response = await errorCase.send();
      });

      test(`returns ${errorCase.status}`, () => {
        assert.equal(response.status, errorCase.status, response.text);
      });

      test('sends a JSON body', () => {
        assert.match(String(response.headers['content-type']), /^application\/json/);
      });

      test('sends only an errors array', () => {
        assert.deepEqual(Object.keys(response.body as object), ['errors']);
      });

      test('sends code, message and detail in each error', () => {
        for (const error of (response.body as { errors: object[] }).errors) assert.deepEqual(Object.keys(error).sort(), ['code', 'detail', 'message']);
      });

      test('uses an error code from the specification', () => {
        const code = (response.body as { errors: Array<{ code: string }> }).errors[0]?.code;
        assert.ok(SPEC_CODES.has(String(code)), `code ${code} is not a specification code`);
      });

      test('leaks no storage key, path, stack frame or SQL', () => {
        for (const forbidden of FORBIDDEN) assert.ok(!response.text.toLowerCase().includes(forbidden), `body contains "${forbidden}": ${response.text}`);
      });
    });
  }
});

describe('unknown paths and methods', () => {
  test('returns 404 with an OCI body for an unknown /v2 path', async () => {
    const response = await client.http.get('/v2/library/app/unknown/thing');
    assertOciError(response, 404, 'UNSUPPORTED');
  });

  test('returns 405 UNSUPPORTED for POST on tags list', async () => {
    const response = await client.http.post(`/v2/${uniqueRepository('method')}/tags/list`);
    assertOciError(response, 405, 'UNSUPPORTED');
  });

  test('returns 405 UNSUPPORTED for PUT on a blob', async () => {
    const response = await client.http.put(`/v2/${uniqueRepository('method')}/blobs/${digestOf('x')}`);
    assertOciError(response, 405, 'UNSUPPORTED');
  });

  test('returns 405 UNSUPPORTED for DELETE on the catalog', async () => {
    const response = await client.http.delete('/v2/_catalog');
    assertOciError(response, 405, 'UNSUPPORTED');
  });

  test('returns 405 UNSUPPORTED for PATCH on a manifest', async () => {
    const response = await client.http.patch(`/v2/${uniqueRepository('method')}/manifests/latest`);
    assertOciError(response, 405, 'UNSUPPORTED');
  });

  test('sends the allowed methods in the 405 detail', async () => {
    const response = await client.http.delete('/v2/_catalog');
    assert.deepEqual((response.body as { errors: Array<{ detail: unknown }> }).errors[0]?.detail, { allowed: ['GET', 'HEAD'] });
  });
});

describe('repository names', () => {
  test('returns 400 NAME_INVALID for an uppercase name', async () => {
    const response = await client.http.get('/v2/Library/app/tags/list');
    assertOciError(response, 400, 'NAME_INVALID');
  });

  test('returns 400 NAME_INVALID for a ".." path component', async () => {
    const response = await client.http.get('/v2/team-a/../app/tags/list');
    assertOciError(response, 400, 'NAME_INVALID');
  });

  test('returns 400 NAME_INVALID for ".." inside a component', async () => {
    const response = await client.http.get('/v2/team-a/my..app/tags/list');
    assertOciError(response, 400, 'NAME_INVALID');
  });

  test('returns 400 NAME_INVALID for a trailing slash component', async () => {
    const response = await client.http.get('/v2/team-a/app//tags/list');
    assertOciError(response, 400, 'NAME_INVALID');
  });

  test('returns 400 NAME_INVALID for a percent-encoded slash', async () => {
    const response = await client.http.get('/v2/library%2Fapp/tags/list');
    assertOciError(response, 400, 'NAME_INVALID');
  });

  test('returns 400 NAME_INVALID for a percent-encoded letter', async () => {
    const response = await client.http.get('/v2/libr%61ry/app/tags/list');
    assertOciError(response, 400, 'NAME_INVALID');
  });

  test('returns 400 NAME_INVALID for a name over 255 characters', async () => {
    const response = await client.http.get(`/v2/${'a'.repeat(256)}/tags/list`);
    assertOciError(response, 400, 'NAME_INVALID');
  });

  test('returns 400 NAME_INVALID for an upload to an invalid name', async () => {
    const response = await client.http.post('/v2/Library/app/blobs/uploads/');
    assertOciError(response, 400, 'NAME_INVALID');
  });

  test('serves a blob under a nested name a/b/c/d', async () => {
    const repository = `a/b/c/${uniqueRepository('d')}`;
    const content = uniqueContent('nested');
    await client.pushBlob(repository, content);
    const response = await client.getBytes(`/v2/${repository}/blobs/${digestOf(content)}`);
    assert.deepEqual(response.body, content);
  });

  test('serves a manifest under a name that ends in an endpoint word', async () => {
    const repository = `${uniqueRepository('words')}/manifests`;
    const image = await client.pushImage(repository, 'latest');
    const response = await client.getBytes(`/v2/${repository}/manifests/latest`);
    assert.deepEqual(response.body, image.body);
  });
});
