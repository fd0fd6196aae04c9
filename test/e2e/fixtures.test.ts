/**
 * Checks the end-to-end image fixtures with skopeo alone, without a server:
 * skopeo reads each fixture with the expected digest, and a local copy keeps
 * that digest.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  buildArtifactWithSubject,
  buildDockerSchema2Image,
  buildMultiArchIndex,
  buildMultiLayerImage,
  buildSingleLayerImage,
  createScratchDirectory,
  LARGE_FILE_SIZE,
  MediaType,
  readDirManifest,
  readLayoutBlob,
  readLayoutDescriptor,
  removeImageFixtures,
  SBOM_ARTIFACT_TYPE,
  sha256Digest,
  type Descriptor,
  type ImageFixture,
} from '../helpers/images.js';
import { copy, inspect, isSkopeoAvailable } from '../helpers/skopeo.js';

const skip = (await isSkopeoAvailable()) ? false : 'skopeo is not installed';

interface ManifestJson {
  mediaType: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
}

interface IndexJson {
  mediaType: string;
  manifests: Descriptor[];
}

const builders: Array<[string, () => Promise<ImageFixture>]> = [
  ['single-layer', buildSingleLayerImage],
  ['multi-layer', buildMultiLayerImage],
  ['multi-arch', buildMultiArchIndex],
  ['docker-schema2', buildDockerSchema2Image],
  ['sbom-artifact', buildArtifactWithSubject],
];

describe('image fixtures', { skip }, () => {
  for (const [name, build] of builders) {
    test(`${name} is read by skopeo with its digest`, async () => {
      const fixture = await build();

      const raw = await inspect(fixture.imageName, { raw: true });

      assert.equal(sha256Digest(raw), fixture.manifest.digest);
    });

    test(`${name} keeps its digest through a local copy`, async () => {
      const fixture = await build();
      const destination = await createScratchDirectory(`copy-${name}`);
      const destinationName = fixture.transport === 'dir' ? `dir:${destination}` : `oci:${destination}:copied`;

      const result = await copy(fixture.imageName, destinationName, { all: fixture.children.length > 0, preserveDigests: true });

      assert.equal(result.manifestDigest, fixture.manifest.digest);
      const copiedDigest =
        fixture.transport === 'dir'
          ? sha256Digest(await readDirManifest(destination))
          : (await readLayoutDescriptor(destination, 'copied')).digest;
      assert.equal(copiedDigest, fixture.manifest.digest);
    });
  }

  test('multi-layer has a large incompressible layer', async () => {
    const fixture = await buildMultiLayerImage();
    const manifest = JSON.parse(fixture.manifestBytes.toString()) as ManifestJson;

    assert.equal(manifest.layers.length, 3);
    assert.ok((manifest.layers[1]?.size ?? 0) > LARGE_FILE_SIZE, `layer 1 is ${manifest.layers[1]?.size} bytes`);
  });

  test('multi-arch lists amd64 and arm64', async () => {
    const fixture = await buildMultiArchIndex();
    const index = JSON.parse(fixture.manifestBytes.toString()) as IndexJson;

    assert.equal(index.mediaType, MediaType.ociIndex);
    assert.deepEqual(
      index.manifests.map((child) => `${child.platform?.os}/${child.platform?.architecture}`),
      ['linux/amd64', 'linux/arm64'],
    );
  });

  test('multi-arch copy keeps the child manifests', async () => {
    const fixture = await buildMultiArchIndex();
    const destination = await createScratchDirectory('copy-multi-arch-children');

    await copy(fixture.imageName, `oci:${destination}:copied`, { all: true, preserveDigests: true });

    const copiedIndex = JSON.parse((await readLayoutBlob(destination, fixture.manifest.digest)).toString()) as IndexJson;
    assert.deepEqual(
      copiedIndex.manifests.map((child) => child.digest),
      fixture.children.map((child) => child.digest),
    );
    for (const child of fixture.children) {
      assert.equal(sha256Digest(await readLayoutBlob(destination, child.digest)), child.digest);
    }
  });

  test('docker-schema2 uses Docker media types', async () => {
    const fixture = await buildDockerSchema2Image();
    const manifest = JSON.parse(fixture.manifestBytes.toString()) as ManifestJson;

    assert.equal(manifest.mediaType, MediaType.dockerManifest);
    assert.equal(manifest.config.mediaType, MediaType.dockerConfig);
    assert.deepEqual(
      manifest.layers.map((layer) => layer.mediaType),
      [MediaType.dockerLayerGzip],
    );
  });

  test('docker-schema2 shares blobs with single-layer', async () => {
    const docker = await buildDockerSchema2Image();
    const oci = await buildSingleLayerImage();

    assert.deepEqual(
      docker.blobs.map((blob) => blob.digest),
      oci.blobs.map((blob) => blob.digest),
    );
  });

  test('sbom-artifact points at single-layer', async () => {
    const artifact = await buildArtifactWithSubject();
    const manifest = JSON.parse(artifact.manifestBytes.toString()) as ManifestJson;

    assert.equal(manifest.artifactType, SBOM_ARTIFACT_TYPE);
    assert.equal(manifest.config.mediaType, MediaType.ociEmpty);
    assert.equal(manifest.config.digest, sha256Digest('{}'));
    assert.deepEqual(manifest.subject, artifact.subject.manifest);
  });

  // Runs last because it empties the cache that the tests above share.
  test('rebuild gives the same digests', async () => {
    const first = await buildSingleLayerImage();
    await removeImageFixtures();

    const second = await buildSingleLayerImage();

    assert.equal(second.manifest.digest, first.manifest.digest);
    assert.deepEqual(second.blobs, first.blobs);
  });
});
