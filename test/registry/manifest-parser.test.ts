import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRegistryError } from '../../src/errors.js';
import { parseManifest } from '../../src/registry/manifest-parser.js';
import { blobOf, MEDIA, type Descriptor } from '../helpers/registry-client.js';

const CONFIG = blobOf('{"architecture":"amd64","os":"linux"}', MEDIA.ociConfig).descriptor;
const LAYER = blobOf('layer bytes').descriptor;
const CHILD = blobOf('{"child":true}', MEDIA.ociManifest).descriptor;
const SUBJECT = blobOf('{"subject":true}', MEDIA.ociManifest).descriptor;
const FOREIGN_LAYER: Descriptor & { urls: string[] } = { ...blobOf('foreign layer', 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip').descriptor, urls: ['https://example.test/layer'] };

function bytes(document: unknown): Buffer {
  return Buffer.from(JSON.stringify(document));
}

function image(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: CONFIG, layers: [LAYER], ...fields };
}

function isManifestInvalid(error: unknown): boolean {
  return isRegistryError(error, 'MANIFEST_INVALID');
}

describe('parseManifest of image manifests', () => {
  test('lists config and layers as blobs', () => {
    assert.deepEqual(parseManifest(bytes(image()), undefined).blobs, [CONFIG, LAYER]);
  });

  test('lists no children', () => {
    assert.deepEqual(parseManifest(bytes(image()), undefined).children, []);
  });

  test('reads the media type from the body', () => {
    assert.equal(parseManifest(bytes(image()), MEDIA.ociManifest).mediaType, MEDIA.ociManifest);
  });

  test('uses the config media type as artifactType', () => {
    assert.equal(parseManifest(bytes(image()), undefined).artifactType, MEDIA.ociConfig);
  });

  test('prefers the artifactType field', () => {
    assert.equal(parseManifest(bytes(image({ artifactType: 'application/vnd.example.sbom.v1+json' })), undefined).artifactType, 'application/vnd.example.sbom.v1+json');
  });

  test('reads the subject', () => {
    assert.deepEqual(parseManifest(bytes(image({ subject: SUBJECT })), undefined).subject, SUBJECT);
  });

  test('returns a null subject without one', () => {
    assert.equal(parseManifest(bytes(image()), undefined).subject, null);
  });

  test('reads the annotations', () => {
    assert.deepEqual(parseManifest(bytes(image({ annotations: { a: 'b' } })), undefined).annotations, { a: 'b' });
  });

  test('skips a non-distributable layer that has urls', () => {
    assert.deepEqual(parseManifest(bytes(image({ layers: [LAYER, FOREIGN_LAYER] })), undefined).blobs, [CONFIG, LAYER]);
  });

  test('keeps a non-distributable layer without urls', () => {
    const { urls: _urls, ...withoutUrls } = FOREIGN_LAYER;
    assert.deepEqual(parseManifest(bytes(image({ layers: [withoutUrls] })), undefined).blobs, [CONFIG, withoutUrls]);
  });

  test('reads a Docker schema 2 manifest', () => {
    const docker = { schemaVersion: 2, mediaType: MEDIA.dockerManifest, config: { ...CONFIG, mediaType: MEDIA.dockerConfig }, layers: [{ ...LAYER, mediaType: MEDIA.dockerLayer }] };
    assert.equal(parseManifest(bytes(docker), MEDIA.dockerManifest).mediaType, MEDIA.dockerManifest);
  });
});

describe('parseManifest of indexes', () => {
  const INDEX = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [CHILD] };

  test('lists the child manifests', () => {
    assert.deepEqual(parseManifest(bytes(INDEX), undefined).children, [CHILD]);
  });

  test('lists no blobs', () => {
    assert.deepEqual(parseManifest(bytes(INDEX), undefined).blobs, []);
  });

  test('reads the artifactType of an index', () => {
    assert.equal(parseManifest(bytes({ ...INDEX, artifactType: 'application/vnd.example.bundle' }), undefined).artifactType, 'application/vnd.example.bundle');
  });

  test('returns a null artifactType for an index without one', () => {
    assert.equal(parseManifest(bytes(INDEX), undefined).artifactType, null);
  });

  test('reads a Docker manifest list', () => {
    const list = { schemaVersion: 2, mediaType: MEDIA.dockerManifestList, manifests: [{ ...CHILD, mediaType: MEDIA.dockerManifest }] };
    assert.equal(parseManifest(bytes(list), undefined).mediaType, MEDIA.dockerManifestList);
  });
});

describe('parseManifest media type choice', () => {
  const CASES: Array<[string, Record<string, unknown>, string | undefined, string]> = [
    ['the Content-Type when the body has none', { schemaVersion: 2, manifests: [CHILD] }, MEDIA.ociIndex, MEDIA.ociIndex],
    ['the Content-Type without parameters', image({ mediaType: undefined }), `${MEDIA.ociManifest}; charset=utf-8`, MEDIA.ociManifest],
    ['an OCI manifest without either', image({ mediaType: undefined }), undefined, MEDIA.ociManifest],
    ['an OCI index for a body with manifests', { schemaVersion: 2, manifests: [CHILD] }, undefined, MEDIA.ociIndex],
    ['the body over application/json', image(), 'application/json', MEDIA.ociManifest],
    ['the body over application/octet-stream', image(), 'application/octet-stream', MEDIA.ociManifest],
  ];

  for (const [label, document, contentType, expected] of CASES) {
    test(`uses ${label}`, () => {
      assert.equal(parseManifest(bytes(document), contentType).mediaType, expected);
    });
  }
});

describe('parseManifest rejections', () => {
  const CASES: Array<[string, Buffer, string | undefined]> = [
    ['malformed JSON', Buffer.from('{"schemaVersion": 2,'), undefined],
    ['a JSON array', bytes([image()]), undefined],
    ['JSON null', Buffer.from('null'), undefined],
    ['a non-string mediaType', bytes(image({ mediaType: 7 })), undefined],
    ['a Content-Type that contradicts mediaType', bytes(image()), MEDIA.dockerManifest],
    ['schemaVersion 1', bytes(image({ schemaVersion: 1 })), undefined],
    ['a missing schemaVersion', bytes(image({ schemaVersion: undefined })), undefined],
    ['layers that are not an array', bytes(image({ layers: { 0: LAYER } })), undefined],
    ['a missing config', bytes(image({ config: undefined })), undefined],
    ['a negative size', bytes(image({ layers: [{ ...LAYER, size: -1 }] })), undefined],
    ['a fractional size', bytes(image({ layers: [{ ...LAYER, size: 1.5 }] })), undefined],
    ['a malformed layer digest', bytes(image({ layers: [{ ...LAYER, digest: 'sha256:1234' }] })), undefined],
    ['a malformed config digest', bytes(image({ config: { ...CONFIG, digest: 'md5:abc' } })), undefined],
    ['a malformed subject digest', bytes(image({ subject: { ...SUBJECT, digest: 'sha256:zz' } })), undefined],
    ['a malformed child digest', bytes({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ ...CHILD, digest: 'nope' }] }), undefined],
    ['an invalid descriptor media type', bytes(image({ layers: [{ ...LAYER, mediaType: 'not a type' }] })), undefined],
    ['an artifactType that is not a media type', bytes(image({ artifactType: 'sbom' })), undefined],
    ['an artifactType with a NUL character', bytes(image({ artifactType: 'application/x;a=\u0000' })), undefined],
    ['an annotation value with a NUL character', bytes(image({ annotations: { a: '\u0000' } })), undefined],
    ['an annotation key with a NUL character', bytes({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [], annotations: { '\u0000': 'b' } }), undefined],
    ['annotations that are not strings', bytes(image({ annotations: { a: 1 } })), undefined],
    ['a Docker schema 1 manifest', bytes({ schemaVersion: 1, mediaType: 'application/vnd.docker.distribution.manifest.v1+json' }), undefined],
    ['a signed Docker schema 1 manifest', bytes({ schemaVersion: 1, fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
    ['a Docker schema 2 manifest without mediaType', bytes(image({ mediaType: undefined })), MEDIA.dockerManifest],
    ['an unsupported media type', bytes(image({ mediaType: 'application/vnd.example.unknown+json' })), undefined],
  ];

  for (const [label, body, contentType] of CASES) {
    test(`throws MANIFEST_INVALID for ${label}`, () => {
      assert.throws(() => parseManifest(body, contentType), isManifestInvalid);
    });
  }
});

describe('parseManifest key case', () => {
  /** Returns the manifest bytes with `key` added to the top level, after the fields that `image()` sets. */
  function withRawKey(key: string, value: unknown): Buffer {
    const text = JSON.stringify(image());
    return Buffer.from(`${text.slice(0, -1)},${JSON.stringify(key)}:${JSON.stringify(value)}}`);
  }

  function messageOf(body: Buffer): string {
    try {
      parseManifest(body, undefined);
    } catch (error) {
      assert.ok(isManifestInvalid(error), `expected MANIFEST_INVALID, got ${String(error)}`);
      return (error as Error).message;
    }
    assert.fail('expected parseManifest to throw');
  }

  test('rejects Layers next to layers', () => {
    assert.match(messageOf(withRawKey('Layers', [])), /"layers" and "Layers" differ only in case/);
  });

  test('rejects a lone Subject', () => {
    assert.match(messageOf(withRawKey('Subject', SUBJECT)), /key "Subject" must be spelled "subject"/);
  });

  test('rejects a descriptor key in another case', () => {
    const body = bytes(image({ layers: [{ mediaType: LAYER.mediaType, Digest: LAYER.digest, size: LAYER.size }] }));
    assert.match(messageOf(body), /key "Digest" must be spelled "digest" \(at layers\[0\]\.Digest\)/);
  });

  test('rejects case twins of an unknown key', () => {
    const body = bytes(image({ layers: [{ ...LAYER, extra: 1, EXTRA: 2 }] }));
    assert.match(messageOf(body), /"extra" and "EXTRA" differ only in case/);
  });

  test('rejects a platform key in another case', () => {
    const body = bytes({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ ...CHILD, platform: { architecture: 'amd64', OS: 'linux' } }] });
    assert.match(messageOf(body), /key "OS" must be spelled "os"/);
  });

  test('rejects Manifests in an index', () => {
    const body = bytes({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [CHILD], Manifests: [] });
    assert.match(messageOf(body), /"manifests" and "Manifests" differ only in case/);
  });

  test('accepts annotation keys that differ in case', () => {
    assert.deepEqual(parseManifest(bytes(image({ annotations: { 'org.example.Size': 'a', 'org.example.size': 'b' } })), undefined).annotations, { 'org.example.Size': 'a', 'org.example.size': 'b' });
  });

  test('accepts annotation keys named like fields', () => {
    assert.deepEqual(parseManifest(bytes(image({ annotations: { Size: 'large' } })), undefined).annotations, { Size: 'large' });
  });
});
