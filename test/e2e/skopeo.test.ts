/**
 * End-to-end tests with a real client: skopeo pushes, inspects, lists,
 * pulls and deletes real images against a running gateway, once per storage
 * driver. The S3 run needs `S3_ENDPOINT` and is skipped without it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  buildArtifactWithSubject,
  buildDockerSchema2Image,
  buildMultiArchIndex,
  buildMultiLayerImage,
  buildSingleLayerImage,
  createScratchDirectory,
  MediaType,
  readDirManifest,
  readLayoutBlob,
  readLayoutDescriptor,
  sha256Digest,
  type ArtifactFixture,
  type Descriptor,
  type ImageFixture,
  type ImageTransport,
} from '../helpers/images.js';
import { basicAuthorization, createTestRobot, startTestServer, type TestServer } from '../helpers/server.js';
import { copy, deleteImage, inspect, isSkopeoAvailable, listTags, SkopeoError, type PlatformOverride } from '../helpers/skopeo.js';

const TAG = 'v1';

const skopeoMissing = (await isSkopeoAvailable()) ? false : 'skopeo is not installed';
const drivers = [
  { storage: 'filesystem' as const, skip: skopeoMissing },
  { storage: 's3' as const, skip: skopeoMissing || (process.env.S3_ENDPOINT ? false : 'S3_ENDPOINT is not set') },
];

interface ManifestJson {
  layers: Descriptor[];
}

interface IndexJson {
  mediaType?: string;
  manifests: Descriptor[];
}

/** How one image fixture is pushed, pulled and inspected. */
interface RoundTripCase {
  /** Fixture name, which is also the repository name under `e2e/`. */
  name: string;
  build: () => Promise<ImageFixture>;
  /** Copies every image of an index (`--all`). */
  all: boolean;
  /**
   * Transport to pull into. A Docker schema 2 manifest must go to `dir:`,
   * because an OCI layout either converts it to OCI or, with
   * `--preserve-digests`, stores it where skopeo 1.9.3 cannot read it back.
   */
  pullTransport: ImageTransport;
  /** Platform that `skopeo inspect` selects from an index. */
  inspectPlatform?: PlatformOverride;
}

const roundTripCases: RoundTripCase[] = [
  { name: 'single-layer', build: buildSingleLayerImage, all: false, pullTransport: 'oci' },
  { name: 'multi-layer', build: buildMultiLayerImage, all: false, pullTransport: 'oci' },
  {
    name: 'multi-arch',
    build: buildMultiArchIndex,
    all: true,
    pullTransport: 'oci',
    inspectPlatform: { os: 'linux', architecture: 'arm64' },
  },
  { name: 'docker-schema2', build: buildDockerSchema2Image, all: false, pullTransport: 'dir' },
];

// Every skopeo call logs in as a CI robot whose only grant is on e2e/**. It has
// pull-uncertified, as a CI robot that tests its own images does, because these
// tests pull uncertified images.
let robotCreds = '';
let robotAuthorization = '';

for (const driver of drivers) {
  describe(`skopeo with ${driver.storage} storage`, { skip: driver.skip }, () => {
    let server: TestServer | undefined;

    before(async () => {
      server = await startTestServer({ storage: driver.storage });
      const robot = await createTestRobot(server.db, 'e2e-pusher', [{ pattern: 'e2e/**', permissions: ['pull', 'push', 'delete', 'pull-uncertified'] }]);
      robotCreds = `${robot.username}:${robot.password}`;
      robotAuthorization = basicAuthorization(robot);
    });

    after(async () => {
      await server?.close();
    });

    const requireServer = (): TestServer => {
      if (server === undefined) throw new Error('test server did not start; see the failure of the before hook');
      return server;
    };

    for (const roundTrip of roundTripCases) {
      describeRoundTrip(roundTrip, requireServer);
    }
    describeArtifactWithSubject(requireServer);
  });
}

/** Registers the push, inspect, list, pull and delete tests for one fixture. */
function describeRoundTrip(roundTrip: RoundTripCase, requireServer: () => TestServer): void {
  describe(roundTrip.name, () => {
    let fixture: ImageFixture;
    const repository = () => `docker://${requireServer().host}/e2e/${fixture.name}`;
    const reference = () => `${repository()}:${TAG}`;

    before(async () => {
      fixture = await roundTrip.build();
    });

    test('push keeps the manifest digest', async () => {
      const result = await copy(fixture.imageName, reference(), { all: roundTrip.all, preserveDigests: true, creds: robotCreds });

      assert.equal(result.manifestDigest, fixture.manifest.digest);
    });

    test('inspect --raw returns the pushed manifest', async () => {
      const raw = await inspect(reference(), { raw: true, creds: robotCreds });

      assert.equal(sha256Digest(raw), fixture.manifest.digest);
    });

    test('inspect reports digest, tag and layers', async () => {
      const summary = await inspect(reference(), { platform: roundTrip.inspectPlatform, creds: robotCreds });

      assert.equal(summary.Digest, fixture.manifest.digest);
      assert.ok(summary.RepoTags.includes(TAG), `RepoTags ${JSON.stringify(summary.RepoTags)} lack ${TAG}`);
      assert.deepEqual(summary.Layers, await expectedLayerDigests(fixture, roundTrip.inspectPlatform));
    });

    test('list-tags includes the tag', async () => {
      const tags = await listTags(repository(), { creds: robotCreds });

      assert.ok(tags.includes(TAG), `tags ${JSON.stringify(tags)} lack ${TAG}`);
    });

    if (roundTrip.all) {
      test('index children are readable by digest', async () => {
        for (const child of fixture.children) {
          const raw = await inspect(`${repository()}@${child.digest}`, { raw: true, creds: robotCreds });
          assert.equal(sha256Digest(raw), child.digest);
        }
      });
    }

    test('pull keeps the manifest digest', async () => {
      const destination = await createScratchDirectory(`pull-${fixture.name}`);
      const destinationName = roundTrip.pullTransport === 'dir' ? `dir:${destination}` : `oci:${destination}:${TAG}`;

      await copy(reference(), destinationName, { all: roundTrip.all, preserveDigests: true, creds: robotCreds });

      assert.equal(await readPulledDigest(roundTrip.pullTransport, destination), fixture.manifest.digest);
      if (fixture.children.length === 0) return;
      const pulledIndex = JSON.parse((await readLayoutBlob(destination, fixture.manifest.digest)).toString()) as IndexJson;
      assert.deepEqual(
        pulledIndex.manifests.map((child) => child.digest),
        fixture.children.map((child) => child.digest),
      );
    });

    if (roundTrip.pullTransport === 'dir') {
      test('GET manifest returns the Docker media type', async () => {
        const response = await fetch(`${requireServer().url}/v2/e2e/${fixture.name}/manifests/${TAG}`, {
          headers: { Accept: MediaType.dockerManifest, Authorization: robotAuthorization },
        });
        await response.arrayBuffer();

        assert.equal(response.status, 200);
        assert.equal(response.headers.get('content-type'), MediaType.dockerManifest);
        assert.equal(response.headers.get('docker-content-digest'), fixture.manifest.digest);
      });
    }

    test('delete removes the manifest', async () => {
      await deleteImage(reference(), { creds: robotCreds });

      await assert.rejects(inspect(reference(), { raw: true, creds: robotCreds }), isManifestUnknown);
    });
  });
}

/**
 * Registers the tests for an artifact whose `subject` is another image in the
 * same repository. skopeo 1.9.3 pushes the artifact manifest unchanged,
 * `subject` included, but sends no referrers request and pushes no referrers
 * tag, so the gateway alone must index the artifact.
 */
function describeArtifactWithSubject(requireServer: () => TestServer): void {
  describe('sbom-artifact', () => {
    let artifact: ArtifactFixture;
    const repository = () => `docker://${requireServer().host}/e2e/${artifact.name}`;
    const subjectReference = () => `${repository()}:subject`;
    const artifactReference = () => `${repository()}:sbom`;

    // Asserts the status before parsing, so an error page fails with its body instead of a JSON error.
    const fetchReferrers = async (): Promise<{ contentType: string | null; index: IndexJson }> => {
      const url = `${requireServer().url}/v2/e2e/${artifact.name}/referrers/${artifact.subject.manifest.digest}`;
      const response = await fetch(url, { headers: { Accept: MediaType.ociIndex, Authorization: robotAuthorization } });
      const body = await response.text();
      assert.equal(response.status, 200, `GET ${url} returned ${response.status}: ${body}`);
      return { contentType: response.headers.get('content-type'), index: JSON.parse(body) as IndexJson };
    };

    before(async () => {
      artifact = await buildArtifactWithSubject();
    });

    test('push of the subject keeps its digest', async () => {
      const result = await copy(artifact.subject.imageName, subjectReference(), { preserveDigests: true, creds: robotCreds });

      assert.equal(result.manifestDigest, artifact.subject.manifest.digest);
    });

    test('push of the artifact keeps its digest', async () => {
      const result = await copy(artifact.imageName, artifactReference(), { preserveDigests: true, creds: robotCreds });

      assert.equal(result.manifestDigest, artifact.manifest.digest);
    });

    // skopeo 1.9.3 rejects the summary form of inspect for artifacts, so only --raw applies.
    test('inspect --raw returns the artifact manifest', async () => {
      const raw = await inspect(artifactReference(), { raw: true, creds: robotCreds });

      assert.equal(sha256Digest(raw), artifact.manifest.digest);
    });

    test('list-tags includes subject and artifact tags', async () => {
      const tags = await listTags(repository(), { creds: robotCreds });

      assert.ok(tags.includes('subject'), `tags ${JSON.stringify(tags)} lack subject`);
      assert.ok(tags.includes('sbom'), `tags ${JSON.stringify(tags)} lack sbom`);
    });

    test('referrers lists the artifact', async () => {
      const { contentType, index } = await fetchReferrers();
      const entry = index.manifests.find((descriptor) => descriptor.digest === artifact.manifest.digest);

      // The OCI conformance suite compares this header exactly, so a charset parameter fails it too.
      assert.equal(contentType, MediaType.ociIndex);
      assert.ok(entry !== undefined, `referrers ${JSON.stringify(index.manifests)} lack ${artifact.manifest.digest}`);
      assert.equal(entry.artifactType, artifact.artifactType);
      assert.equal(entry.mediaType, MediaType.ociManifest);
      assert.equal(entry.size, artifact.manifest.size);
    });

    test('pull keeps the artifact digest', async () => {
      const destination = await createScratchDirectory('pull-sbom-artifact');

      await copy(artifactReference(), `oci:${destination}:${TAG}`, { preserveDigests: true, creds: robotCreds });

      assert.equal(await readPulledDigest('oci', destination), artifact.manifest.digest);
    });

    test('delete removes the artifact', async () => {
      await deleteImage(artifactReference(), { creds: robotCreds });

      await assert.rejects(inspect(artifactReference(), { raw: true, creds: robotCreds }), isManifestUnknown);
    });

    test('referrers omits the deleted artifact', async () => {
      const { index } = await fetchReferrers();
      const digests = index.manifests.map((descriptor) => descriptor.digest);

      assert.ok(!digests.includes(artifact.manifest.digest), `referrers ${JSON.stringify(digests)} still list the artifact`);
    });
  });
}

/** Returns the layer digests of the fixture's image, or of the index child for `platform`. */
async function expectedLayerDigests(fixture: ImageFixture, platform: PlatformOverride | undefined): Promise<string[]> {
  let manifestBytes = fixture.manifestBytes;
  if (platform !== undefined) {
    const child = fixture.children.find(
      (descriptor) => descriptor.platform?.os === platform.os && descriptor.platform.architecture === platform.architecture,
    );
    if (child === undefined) throw new Error(`fixture ${fixture.name} has no image for ${platform.os}/${platform.architecture}`);
    manifestBytes = await readLayoutBlob(fixture.path, child.digest);
  }

  const manifest = JSON.parse(manifestBytes.toString()) as ManifestJson;
  return manifest.layers.map((layer) => layer.digest);
}

async function readPulledDigest(transport: ImageTransport, destination: string): Promise<string> {
  if (transport === 'dir') return sha256Digest(await readDirManifest(destination));
  return (await readLayoutDescriptor(destination, TAG)).digest;
}

/** Matches the skopeo error for a manifest that the registry reports as MANIFEST_UNKNOWN. */
function isManifestUnknown(error: unknown): boolean {
  assert.ok(error instanceof SkopeoError, `expected a SkopeoError, got ${String(error)}`);
  assert.match(error.stderr, /manifest unknown/i);
  return true;
}
