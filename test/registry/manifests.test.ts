import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Response } from 'supertest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import {
  assertOciError,
  blobOf,
  digestOf,
  dockerManifest,
  dockerManifestList,
  emptyConfigBlob,
  manifestFromText,
  MEDIA,
  ociArtifactManifest,
  ociImageManifest,
  ociIndex,
  pathOf,
  RegistryClient,
  uniqueContent,
  uniqueRepository,
  type ManifestDocument,
} from '../helpers/registry-client.js';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** An Accept header that lists none of the media types pushed here. */
const FOREIGN_ACCEPT = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

const SBOM_TYPE = 'application/vnd.example.sbom.v1+json';

let server: TestServer;
let client: RegistryClient;

before(async () => {
  server = await startTestServer();
  client = new RegistryClient(server.url, server.admin);
});
after(() => server.close());

/** Pushes a config and a layer of unique bytes and returns an OCI image manifest over them, not pushed. */
async function preparedImage(repository: string): Promise<ManifestDocument> {
  const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
  const layer = blobOf(uniqueContent('layer'));
  await client.pushBlobs(repository, [config, layer]);
  return ociImageManifest(config.descriptor, [layer.descriptor]);
}

async function preparedDockerImage(repository: string): Promise<ManifestDocument> {
  const config = blobOf(uniqueContent('docker-config'), MEDIA.dockerConfig);
  const layer = blobOf(uniqueContent('docker-layer'), MEDIA.dockerLayer);
  await client.pushBlobs(repository, [config, layer]);
  return dockerManifest(config.descriptor, [layer.descriptor]);
}

/** Each kind of manifest the registry stores, with a builder that pushes everything it references. */
const KINDS: Array<{ label: string; build(repository: string): Promise<ManifestDocument> }> = [
  { label: 'OCI image manifest', build: preparedImage },
  {
    label: 'OCI image index',
    build: async (repository) => {
      const child = await client.pushImage(repository);
      return ociIndex([{ ...child.descriptor, platform: { architecture: 'amd64', os: 'linux' } }]);
    },
  },
  { label: 'Docker schema 2 manifest', build: preparedDockerImage },
  {
    label: 'Docker manifest list',
    build: async (repository) => {
      const child = await preparedDockerImage(repository);
      await client.pushManifest(repository, child.digest, child);
      return dockerManifestList([{ ...child.descriptor, platform: { architecture: 'arm64', os: 'linux' } }]);
    },
  },
  {
    label: 'OCI artifact manifest',
    build: async (repository) => {
      const subject = await client.pushImage(repository);
      const sbom = blobOf(uniqueContent('sbom'), SBOM_TYPE);
      await client.pushBlobs(repository, [emptyConfigBlob(), sbom]);
      return ociArtifactManifest(SBOM_TYPE, subject.descriptor, [sbom.descriptor]);
    },
  },
];

for (const kind of KINDS) {
  describe(`${kind.label} round trip`, () => {
    let tagRepository: string;
    let byTag: ManifestDocument;
    let tagPush: Response;
    let digestRepository: string;
    let byDigest: ManifestDocument;
    let digestPush: Response;

    before(async () => {
      tagRepository = uniqueRepository('kinds');
      byTag = await kind.build(tagRepository);
      tagPush = await client.putManifest(tagRepository, 'v1', byTag);
      digestRepository = uniqueRepository('kinds');
      byDigest = await kind.build(digestRepository);
      digestPush = await client.putManifest(digestRepository, byDigest.digest, byDigest);
    });

    test('returns 201 for PUT by tag', () => {
      assert.equal(tagPush.status, 201, tagPush.text);
    });

    test('returns 201 for PUT by digest', () => {
      assert.equal(digestPush.status, 201, digestPush.text);
    });

    test('sends the digest Location after PUT', () => {
      assert.equal(pathOf(tagPush.headers.location), `/v2/${tagRepository}/manifests/${byTag.digest}`);
    });

    test('sends Docker-Content-Digest after PUT', () => {
      assert.equal(tagPush.headers['docker-content-digest'], byTag.digest);
    });

    test('returns the exact bytes by tag', async () => {
      const response = await client.getBytes(`/v2/${tagRepository}/manifests/v1`, { Accept: FOREIGN_ACCEPT });
      assert.deepEqual(response.body, byTag.body);
    });

    test('returns the exact bytes by digest', async () => {
      const response = await client.getBytes(`/v2/${digestRepository}/manifests/${byDigest.digest}`, { Accept: FOREIGN_ACCEPT });
      assert.deepEqual(response.body, byDigest.body);
    });

    test('sends the stored media type whatever Accept says', async () => {
      const response = await client.getBytes(`/v2/${tagRepository}/manifests/v1`, { Accept: FOREIGN_ACCEPT });
      assert.equal(response.headers['content-type'], byTag.mediaType);
    });

    test('sends Docker-Content-Digest on GET', async () => {
      const response = await client.getBytes(`/v2/${tagRepository}/manifests/v1`, { Accept: FOREIGN_ACCEPT });
      assert.equal(response.headers['docker-content-digest'], byTag.digest);
    });

    test('sends Content-Length on GET', async () => {
      const response = await client.getBytes(`/v2/${tagRepository}/manifests/v1`, { Accept: FOREIGN_ACCEPT });
      assert.equal(response.headers['content-length'], String(byTag.size));
    });

    test('sends Docker-Content-Digest on HEAD', async () => {
      const response = await client.http.head(`/v2/${digestRepository}/manifests/${byDigest.digest}`).set('Accept', FOREIGN_ACCEPT);
      assert.equal(response.headers['docker-content-digest'], byDigest.digest);
    });
  });
}

describe('manifest bytes', () => {
  test('returns odd whitespace byte for byte', async () => {
    const repository = uniqueRepository('whitespace');
    const image = await preparedImage(repository);
    const document = JSON.parse(image.body.toString()) as { config: unknown; layers: unknown };
    const text = `{\r\n\t"schemaVersion" :   2 ,"mediaType":"${MEDIA.ociManifest}",\n\n  "config"  : ${JSON.stringify(document.config, null, 7)},\t"layers":${JSON.stringify(document.layers)}  }\n\n   `;
    const manifest = await client.pushManifest(repository, 'spaced', manifestFromText(text, MEDIA.ociManifest));
    const response = await client.getBytes(`/v2/${repository}/manifests/spaced`);
    assert.deepEqual(response.body, manifest.body);
  });

  test('serves a manifest pushed by sha512 digest under that digest', async () => {
    const repository = uniqueRepository('sha512');
    const image = await preparedImage(repository);
    const digest = digestOf(image.body, 'sha512');
    await client.putManifest(repository, digest, image);
    const response = await client.getBytes(`/v2/${repository}/manifests/${digest}`);
    assert.deepEqual(response.body, image.body);
  });

  test('returns 201 for a manifest whose blobs were pushed with sha512', async () => {
    const repository = uniqueRepository('sha512');
    const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
    const layerBytes = uniqueContent('layer');
    await client.pushBlob(repository, config);
    await client.pushBlob(repository, layerBytes, 'sha512');
    const manifest = ociImageManifest(config.descriptor, [{ mediaType: MEDIA.ociLayer, digest: digestOf(layerBytes, 'sha512'), size: layerBytes.length }]);
    const response = await client.putManifest(repository, 'latest', manifest);
    assert.equal(response.status, 201, response.text);
  });

  test('uses the Content-Type when the body has no mediaType', async () => {
    const repository = uniqueRepository('no-media-type');
    const image = await preparedImage(repository);
    const document = JSON.parse(image.body.toString()) as Record<string, unknown>;
    delete document.mediaType;
    await client.pushManifest(repository, 'latest', manifestFromText(JSON.stringify(document), MEDIA.ociManifest));
    const response = await client.http.head(`/v2/${repository}/manifests/latest`);
    assert.equal(response.headers['content-type'], MEDIA.ociManifest);
  });
});

describe('repeated references', () => {
  test('returns 201 for a manifest that lists one layer twice', async () => {
    const repository = uniqueRepository('repeated');
    const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
    const layer = blobOf(uniqueContent('layer'));
    await client.pushBlobs(repository, [config, layer]);
    const response = await client.putManifest(repository, 'latest', ociImageManifest(config.descriptor, [layer.descriptor, layer.descriptor]));
    assert.equal(response.status, 201, response.text);
  });

  test('returns 201 for an index that lists one child for two platforms', async () => {
    const repository = uniqueRepository('repeated');
    const child = await client.pushImage(repository);
    const platforms = [
      { ...child.descriptor, platform: { architecture: 'amd64', os: 'linux' } },
      { ...child.descriptor, platform: { architecture: 'arm64', os: 'linux' } },
    ];
    const response = await client.putManifest(repository, 'latest', ociIndex(platforms));
    assert.equal(response.status, 201, response.text);
  });
});

describe('rejected manifests', () => {
  test('returns 400 DIGEST_INVALID when the body hashes to another digest', async () => {
    const repository = uniqueRepository('rejected');
    const image = await preparedImage(repository);
    const response = await client.putManifest(repository, digestOf(uniqueContent('elsewhere')), image);
    assertOciError(response, 400, 'DIGEST_INVALID');
  });

  test('returns 400 MANIFEST_BLOB_UNKNOWN for a missing layer', async () => {
    const repository = uniqueRepository('rejected');
    const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
    await client.pushBlob(repository, config);
    const response = await client.putManifest(repository, 'latest', ociImageManifest(config.descriptor, [blobOf(uniqueContent('missing')).descriptor]));
    assertOciError(response, 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('returns 400 MANIFEST_BLOB_UNKNOWN for a missing config', async () => {
    const repository = uniqueRepository('rejected');
    const layer = blobOf(uniqueContent('layer'));
    await client.pushBlob(repository, layer);
    const response = await client.putManifest(repository, 'latest', ociImageManifest(blobOf(uniqueContent('missing'), MEDIA.ociConfig).descriptor, [layer.descriptor]));
    assertOciError(response, 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('returns 400 MANIFEST_BLOB_UNKNOWN for a layer pushed only to another repository', async () => {
    const repository = uniqueRepository('rejected');
    const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
    const layer = blobOf(uniqueContent('layer'));
    await client.pushBlob(repository, config);
    await client.pushBlob(uniqueRepository('elsewhere'), layer);
    const response = await client.putManifest(repository, 'latest', ociImageManifest(config.descriptor, [layer.descriptor]));
    assertOciError(response, 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('returns 400 MANIFEST_BLOB_UNKNOWN for an index with a missing child', async () => {
    const repository = uniqueRepository('rejected');
    const unpushed = await preparedImage(repository);
    const response = await client.putManifest(repository, 'latest', ociIndex([unpushed.descriptor]));
    assertOciError(response, 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('returns 400 MANIFEST_INVALID for malformed JSON', async () => {
    const response = await client.putManifest(uniqueRepository('rejected'), 'latest', manifestFromText('{"schemaVersion": 2, "layers": [', MEDIA.ociManifest));
    assertOciError(response, 400, 'MANIFEST_INVALID');
  });

  test('returns 400 MANIFEST_INVALID when layers is not an array', async () => {
    const repository = uniqueRepository('rejected');
    const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
    await client.pushBlob(repository, config);
    const text = JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: config.descriptor, layers: { not: 'an array' } });
    const response = await client.putManifest(repository, 'latest', manifestFromText(text, MEDIA.ociManifest));
    assertOciError(response, 400, 'MANIFEST_INVALID');
  });

  test('returns 400 MANIFEST_INVALID for schemaVersion 1', async () => {
    const repository = uniqueRepository('rejected');
    const image = await preparedImage(repository);
    const document = { ...(JSON.parse(image.body.toString()) as Record<string, unknown>), schemaVersion: 1 };
    const response = await client.putManifest(repository, 'latest', manifestFromText(JSON.stringify(document), MEDIA.ociManifest));
    assertOciError(response, 400, 'MANIFEST_INVALID');
  });

  test('returns 400 MANIFEST_INVALID for a Docker schema 1 media type', async () => {
    const text = JSON.stringify({ schemaVersion: 1, name: 'library/app', tag: 'latest', fsLayers: [], history: [] });
    const response = await client.putManifest(uniqueRepository('rejected'), 'latest', manifestFromText(text, 'application/vnd.docker.distribution.manifest.v1+prettyjws'));
    assertOciError(response, 400, 'MANIFEST_INVALID');
  });

  test('returns 400 MANIFEST_INVALID when Content-Type and mediaType disagree', async () => {
    const repository = uniqueRepository('rejected');
    const image = await preparedImage(repository);
    const response = await client.putManifest(repository, 'latest', { body: image.body, mediaType: MEDIA.dockerManifest });
    assertOciError(response, 400, 'MANIFEST_INVALID');
  });

  test('returns 400 MANIFEST_INVALID when a descriptor size is wrong', async () => {
    const repository = uniqueRepository('rejected');
    const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
    const layer = blobOf(uniqueContent('layer'));
    await client.pushBlobs(repository, [config, layer]);
    const response = await client.putManifest(repository, 'latest', ociImageManifest(config.descriptor, [{ ...layer.descriptor, size: layer.descriptor.size + 1 }]));
    assertOciError(response, 400, 'MANIFEST_INVALID');
  });

  test('returns 400 MANIFEST_INVALID for an artifactType that is not a media type', async () => {
    const repository = uniqueRepository('rejected');
    const subject = await client.pushImage(repository);
    await client.pushBlob(repository, emptyConfigBlob());
    const response = await client.putManifest(repository, 'latest', ociArtifactManifest('not a media type\u0000', subject.descriptor, []));
    assertOciError(response, 400, 'MANIFEST_INVALID');
  });

  test('returns 400 MANIFEST_INVALID for an annotation value with a NUL character', async () => {
    const repository = uniqueRepository('rejected');
    const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
    await client.pushBlob(repository, config);
    const response = await client.putManifest(repository, 'latest', ociImageManifest(config.descriptor, [], { annotations: { note: 'before\u0000after' } }));
    assertOciError(response, 400, 'MANIFEST_INVALID');
  });

  test('returns 400 MANIFEST_INVALID for an annotation key with a NUL character', async () => {
    const repository = uniqueRepository('rejected');
    const child = await client.pushImage(repository);
    const response = await client.putManifest(repository, 'latest', ociIndex([child.descriptor], { annotations: { 'note\u0000': 'value' } }));
    assertOciError(response, 400, 'MANIFEST_INVALID');
  });

  test('returns 413 for a manifest over 4 MiB', async () => {
    const padding = 'x'.repeat(MAX_MANIFEST_BYTES);
    const text = JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, annotations: { padding } });
    const response = await client.putManifest(uniqueRepository('large'), 'latest', manifestFromText(text, MEDIA.ociManifest));
    assert.equal(response.status, 413);
  });

  test('returns 413 for a manifest over 4 MiB sent without Content-Length', async () => {
    const { port } = new URL(server.url);
    const status = await new Promise<number>((resolve, reject) => {
      const put = http.request({ host: '127.0.0.1', port, method: 'PUT', path: `/v2/${uniqueRepository('large')}/manifests/latest`, headers: { Authorization: server.adminAuthorization, 'Content-Type': MEDIA.ociManifest, 'Transfer-Encoding': 'chunked' } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      put.on('error', reject);
      put.write(`{"schemaVersion":2,"annotations":{"padding":"`);
      put.write('x'.repeat(MAX_MANIFEST_BYTES));
      put.end('"}}');
    });
    assert.equal(status, 413);
  });

  test('returns 201 for a manifest of exactly 4 MiB', async () => {
    const repository = uniqueRepository('large');
    const image = await preparedImage(repository);
    const document = JSON.parse(image.body.toString()) as Record<string, unknown>;
    const skeleton = JSON.stringify({ ...document, annotations: { padding: '' } });
    const text = JSON.stringify({ ...document, annotations: { padding: 'x'.repeat(MAX_MANIFEST_BYTES - skeleton.length) } });
    const response = await client.putManifest(repository, 'latest', manifestFromText(text, MEDIA.ociManifest));
    assert.equal(response.status, 201, response.text);
  });
});

describe('manifest headers', () => {
  test('sends the index digest on HEAD by tag', async () => {
    const repository = uniqueRepository('index-head');
    const child = await client.pushImage(repository);
    const index = await client.pushManifest(repository, 'multi', ociIndex([child.descriptor]));
    const response = await client.http.head(`/v2/${repository}/manifests/multi`);
    assert.equal(response.headers['docker-content-digest'], index.digest);
  });

  test('sends OCI-Subject after a push with subject', async () => {
    const repository = uniqueRepository('subject');
    const subject = await client.pushImage(repository);
    await client.pushBlob(repository, emptyConfigBlob());
    const response = await client.putManifest(repository, 'sbom', ociArtifactManifest(SBOM_TYPE, subject.descriptor, []));
    assert.equal(response.headers['oci-subject'], subject.digest);
  });

  test('sends no OCI-Subject after a push without subject', async () => {
    const repository = uniqueRepository('subject');
    const image = await preparedImage(repository);
    const response = await client.putManifest(repository, 'plain', image);
    assert.equal(response.headers['oci-subject'], undefined);
  });
});

describe('tags and deletion', () => {
  test('serves the new content after a tag moves', async () => {
    const repository = uniqueRepository('move');
    await client.pushImage(repository, 'latest');
    const second = await client.pushImage(repository, 'latest');
    const response = await client.getBytes(`/v2/${repository}/manifests/latest`);
    assert.deepEqual(response.body, second.body);
  });

  test('keeps the old content by digest after a tag moves', async () => {
    const repository = uniqueRepository('move');
    const first = await client.pushImage(repository, 'latest');
    await client.pushImage(repository, 'latest');
    const response = await client.getBytes(`/v2/${repository}/manifests/${first.digest}`);
    assert.deepEqual(response.body, first.body);
  });

  test('returns 202 for DELETE by digest', async () => {
    const repository = uniqueRepository('delete');
    const image = await client.pushImage(repository, 'latest');
    const response = await client.http.delete(`/v2/${repository}/manifests/${image.digest}`);
    assert.equal(response.status, 202);
  });

  test('returns 404 MANIFEST_UNKNOWN by digest after DELETE by digest', async () => {
    const repository = uniqueRepository('delete');
    const image = await client.pushImage(repository, 'latest');
    await client.http.delete(`/v2/${repository}/manifests/${image.digest}`);
    const response = await client.http.get(`/v2/${repository}/manifests/${image.digest}`);
    assertOciError(response, 404, 'MANIFEST_UNKNOWN');
  });

  test('removes every tag of a manifest deleted by digest', async () => {
    const repository = uniqueRepository('delete');
    const image = await client.pushImage(repository, 'latest');
    await client.pushManifest(repository, 'stable', image);
    await client.pushImage(repository, 'other');
    await client.http.delete(`/v2/${repository}/manifests/${image.digest}`);
    const response = await client.http.get(`/v2/${repository}/tags/list`);
    assert.deepEqual(response.body, { name: repository, tags: ['other'] });
  });

  test('returns 404 MANIFEST_UNKNOWN by tag after DELETE by digest', async () => {
    const repository = uniqueRepository('delete');
    const image = await client.pushImage(repository, 'latest');
    await client.http.delete(`/v2/${repository}/manifests/${image.digest}`);
    const response = await client.http.get(`/v2/${repository}/manifests/latest`);
    assertOciError(response, 404, 'MANIFEST_UNKNOWN');
  });

  test('returns 202 for DELETE by tag', async () => {
    const repository = uniqueRepository('untag');
    await client.pushImage(repository, 'latest');
    const response = await client.http.delete(`/v2/${repository}/manifests/latest`);
    assert.equal(response.status, 202);
  });

  test('keeps the manifest by digest after DELETE by tag', async () => {
    const repository = uniqueRepository('untag');
    const image = await client.pushImage(repository, 'latest');
    await client.http.delete(`/v2/${repository}/manifests/latest`);
    const response = await client.getBytes(`/v2/${repository}/manifests/${image.digest}`);
    assert.deepEqual(response.body, image.body);
  });

  test('returns 404 MANIFEST_UNKNOWN for the tag after DELETE by tag', async () => {
    const repository = uniqueRepository('untag');
    await client.pushImage(repository, 'latest');
    await client.http.delete(`/v2/${repository}/manifests/latest`);
    const response = await client.http.get(`/v2/${repository}/manifests/latest`);
    assertOciError(response, 404, 'MANIFEST_UNKNOWN');
  });

  test('returns 404 MANIFEST_UNKNOWN for DELETE of an unknown tag', async () => {
    const repository = uniqueRepository('untag');
    await client.pushImage(repository, 'latest');
    const response = await client.http.delete(`/v2/${repository}/manifests/missing`);
    assertOciError(response, 404, 'MANIFEST_UNKNOWN');
  });

  test('returns 409 DENIED when deleting a child that an index lists', async () => {
    const repository = uniqueRepository('child');
    const child = await client.pushImage(repository);
    await client.pushManifest(repository, 'multi', ociIndex([child.descriptor]));
    const response = await client.http.delete(`/v2/${repository}/manifests/${child.digest}`);
    assertOciError(response, 409, 'DENIED');
  });

  test('returns 202 when deleting a child after its index', async () => {
    const repository = uniqueRepository('child');
    const child = await client.pushImage(repository);
    const index = await client.pushManifest(repository, 'multi', ociIndex([child.descriptor]));
    await client.http.delete(`/v2/${repository}/manifests/${index.digest}`);
    const response = await client.http.delete(`/v2/${repository}/manifests/${child.digest}`);
    assert.equal(response.status, 202);
  });
});

describe('manifest references', () => {
  test('returns 400 DIGEST_INVALID for GET of sha256:1234', async () => {
    const repository = uniqueRepository('reference');
    await client.pushImage(repository, 'latest');
    const response = await client.http.get(`/v2/${repository}/manifests/sha256:1234`);
    assertOciError(response, 400, 'DIGEST_INVALID');
  });

  test('returns 400 DIGEST_INVALID for PUT to sha256:1234', async () => {
    const repository = uniqueRepository('reference');
    const image = await preparedImage(repository);
    const response = await client.putManifest(repository, 'sha256:1234', image);
    assertOciError(response, 400, 'DIGEST_INVALID');
  });

  test('returns 400 DIGEST_INVALID for DELETE of sha256:1234', async () => {
    const repository = uniqueRepository('reference');
    await client.pushImage(repository, 'latest');
    const response = await client.http.delete(`/v2/${repository}/manifests/sha256:1234`);
    assertOciError(response, 400, 'DIGEST_INVALID');
  });

  test('returns 400 DIGEST_INVALID for an uppercase hex digest', async () => {
    const response = await client.http.get(`/v2/${uniqueRepository('reference')}/manifests/sha256:${'A'.repeat(64)}`);
    assertOciError(response, 400, 'DIGEST_INVALID');
  });

  test('returns 404 MANIFEST_UNKNOWN for a blob digest', async () => {
    const repository = uniqueRepository('reference');
    const layer = uniqueContent('layer');
    await client.pushBlob(repository, layer);
    await client.pushImage(repository, 'latest');
    const response = await client.http.get(`/v2/${repository}/manifests/${digestOf(layer)}`);
    assertOciError(response, 404, 'MANIFEST_UNKNOWN');
  });

  test('returns 404 MANIFEST_UNKNOWN in an unknown repository', async () => {
    const response = await client.http.get(`/v2/${uniqueRepository('nowhere')}/manifests/latest`);
    assertOciError(response, 404, 'MANIFEST_UNKNOWN');
  });

  test('returns 400 TAG_INVALID for a tag of 129 characters', async () => {
    const response = await client.http.get(`/v2/${uniqueRepository('reference')}/manifests/${'t'.repeat(129)}`);
    assertOciError(response, 400, 'TAG_INVALID');
  });

  test('returns 201 for a tag of 128 characters', async () => {
    const repository = uniqueRepository('reference');
    const image = await preparedImage(repository);
    const response = await client.putManifest(repository, 't'.repeat(128), image);
    assert.equal(response.status, 201, response.text);
  });

  test('returns 400 TAG_INVALID for a tag with a leading dot', async () => {
    const response = await client.http.get(`/v2/${uniqueRepository('reference')}/manifests/.hidden`);
    assertOciError(response, 400, 'TAG_INVALID');
  });

  test('returns 400 TAG_INVALID for PUT to a tag with a leading dash', async () => {
    const repository = uniqueRepository('reference');
    const image = await preparedImage(repository);
    const response = await client.putManifest(repository, '-dash', image);
    assertOciError(response, 400, 'TAG_INVALID');
  });

  test('returns 201 for a tag with a leading underscore and mixed case', async () => {
    const repository = uniqueRepository('reference');
    const image = await preparedImage(repository);
    const response = await client.putManifest(repository, '_Release-1.0_rc.2', image);
    assert.equal(response.status, 201, response.text);
  });
});
