import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.js';
import {
  assertOciError,
  blobOf,
  digestOf,
  emptyConfigBlob,
  MEDIA,
  ociArtifactManifest,
  ociImageManifest,
  ociIndex,
  RegistryClient,
  uniqueContent,
  uniqueRepository,
  type Descriptor,
  type ManifestDocument,
} from '../helpers/registry-client.js';

const SBOM_TYPE = 'application/vnd.example.sbom.v1+json';
const SIGNATURE_TYPE = 'application/vnd.example.signature.v1+json';
const SBOM_ANNOTATIONS = { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'org.example.tool': 'syft' };

interface ReferrersIndex {
  schemaVersion: number;
  mediaType: string;
  manifests: Descriptor[];
}

let server: TestServer;
let client: RegistryClient;
let repository: string;
let subject: ManifestDocument;
let sbom: ManifestDocument;
let signature: ManifestDocument;
let imageReferrer: ManifestDocument;
let indexReferrer: ManifestDocument;

before(async () => {
  server = await startTestServer();
  client = new RegistryClient(server.url, server.admin);

  repository = uniqueRepository('referrers');
  subject = await client.pushImage(repository, 'latest');
  await client.pushImage(repository, 'unrelated');
  const sbomBlob = blobOf(uniqueContent('sbom'), SBOM_TYPE);
  const signatureBlob = blobOf(uniqueContent('signature'), SIGNATURE_TYPE);
  await client.pushBlobs(repository, [emptyConfigBlob(), sbomBlob, signatureBlob]);
  sbom = await client.pushManifest(repository, 'sbom', ociArtifactManifest(SBOM_TYPE, subject.descriptor, [sbomBlob.descriptor], SBOM_ANNOTATIONS));
  signature = await client.pushManifest(repository, 'signature', ociArtifactManifest(SIGNATURE_TYPE, subject.descriptor, [signatureBlob.descriptor]));

  // An image manifest without artifactType, which the referrers list describes by its config media type.
  const config = blobOf(uniqueContent('config'), MEDIA.ociConfig);
  await client.pushBlob(repository, config);
  imageReferrer = await client.pushManifest(repository, 'image-referrer', ociImageManifest(config.descriptor, [], { subject: subject.descriptor }));

  const child = await client.pushImage(repository);
  indexReferrer = await client.pushManifest(repository, 'index-referrer', ociIndex([child.descriptor], { artifactType: SIGNATURE_TYPE, subject: subject.descriptor }));
});
after(() => server.close());

async function referrersOf(digest: string, query = ''): Promise<{ status: number; headers: Record<string, string>; index: ReferrersIndex }> {
  const response = await client.getBytes(`/v2/${repository}/referrers/${digest}${query}`);
  return { status: response.status, headers: response.headers as Record<string, string>, index: JSON.parse((response.body as Buffer).toString()) as ReferrersIndex };
}

function digests(index: ReferrersIndex): string[] {
  return index.manifests.map((descriptor) => descriptor.digest).sort();
}

function descriptorOf(index: ReferrersIndex, digest: string): Descriptor | undefined {
  return index.manifests.find((descriptor) => descriptor.digest === digest);
}

describe('referrers list', () => {
  test('returns 200', async () => {
    const { status } = await referrersOf(subject.digest);
    assert.equal(status, 200);
  });

  test('sends Content-Type of an OCI image index', async () => {
    const { headers } = await referrersOf(subject.digest);
    assert.equal(headers['content-type'], MEDIA.ociIndex);
  });

  test('returns an OCI image index', async () => {
    const { index } = await referrersOf(subject.digest);
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, MEDIA.ociIndex);
  });

  test('lists every manifest whose subject is the digest', async () => {
    const { index } = await referrersOf(subject.digest);
    assert.deepEqual(digests(index), [sbom.digest, signature.digest, imageReferrer.digest, indexReferrer.digest].sort());
  });

  test('describes an artifact with mediaType, digest, size, artifactType and annotations', async () => {
    const { index } = await referrersOf(subject.digest);
    assert.deepEqual(descriptorOf(index, sbom.digest), { mediaType: MEDIA.ociManifest, digest: sbom.digest, size: sbom.size, artifactType: SBOM_TYPE, annotations: SBOM_ANNOTATIONS });
  });

  test('uses the config media type as artifactType of an image without one', async () => {
    const { index } = await referrersOf(subject.digest);
    assert.equal(descriptorOf(index, imageReferrer.digest)?.artifactType, MEDIA.ociConfig);
  });

  test('describes an index referrer with its media type', async () => {
    const { index } = await referrersOf(subject.digest);
    assert.equal(descriptorOf(index, indexReferrer.digest)?.mediaType, MEDIA.ociIndex);
  });

  test('returns 200 with an empty index when nothing refers to the digest', async () => {
    const { status, index } = await referrersOf(sbom.digest);
    assert.equal(status, 200);
    assert.deepEqual(index.manifests, []);
  });

  test('returns 200 with an empty index for a digest never pushed', async () => {
    const { status, index } = await referrersOf(digestOf(uniqueContent('never')));
    assert.equal(status, 200);
    assert.deepEqual(index.manifests, []);
  });

  test('lists no referrer from another repository', async () => {
    const other = uniqueRepository('referrers-other');
    await client.pushBlob(other, emptyConfigBlob());
    await client.pushManifest(other, 'foreign', ociArtifactManifest(SBOM_TYPE, subject.descriptor, []));
    const { index } = await referrersOf(subject.digest);
    assert.equal(index.manifests.length, 4);
  });

  test('lists a referrer whose subject was never pushed', async () => {
    const missingSubject = { mediaType: MEDIA.ociManifest, digest: digestOf(uniqueContent('absent')), size: 123 };
    const dangling = await client.pushManifest(repository, 'dangling', ociArtifactManifest(SBOM_TYPE, missingSubject, []));
    const { index } = await referrersOf(missingSubject.digest);
    assert.deepEqual(digests(index), [dangling.digest]);
  });

  test('drops a referrer once it is deleted', async () => {
    const temporary = await client.pushManifest(repository, 'temporary', ociArtifactManifest('application/vnd.example.temporary', sbom.descriptor, []));
    await client.http.delete(`/v2/${repository}/manifests/${temporary.digest}`);
    const { index } = await referrersOf(sbom.digest);
    assert.deepEqual(index.manifests, []);
  });

  test('returns 400 DIGEST_INVALID for a malformed subject digest', async () => {
    const response = await client.http.get(`/v2/${repository}/referrers/sha256:1234`);
    assertOciError(response, 400, 'DIGEST_INVALID');
  });
});

describe('referrers artifactType filter', () => {
  test('lists only referrers of the requested artifactType', async () => {
    const { index } = await referrersOf(subject.digest, `?artifactType=${encodeURIComponent(SIGNATURE_TYPE)}`);
    assert.deepEqual(digests(index), [signature.digest, indexReferrer.digest].sort());
  });

  test('sends OCI-Filters-Applied: artifactType', async () => {
    const { headers } = await referrersOf(subject.digest, `?artifactType=${encodeURIComponent(SBOM_TYPE)}`);
    assert.equal(headers['oci-filters-applied'], 'artifactType');
  });

  test('sends no OCI-Filters-Applied without a filter', async () => {
    const { headers } = await referrersOf(subject.digest);
    assert.equal(headers['oci-filters-applied'], undefined);
  });

  test('returns an empty index when no referrer has the artifactType', async () => {
    const { index } = await referrersOf(subject.digest, '?artifactType=application%2Fvnd.example.none');
    assert.deepEqual(index.manifests, []);
  });

  test('returns 200 with an empty index for a filter with a NUL character', async () => {
    const { status, index } = await referrersOf(subject.digest, '?artifactType=application%2Fx%00');
    assert.equal(status, 200);
    assert.deepEqual(index.manifests, []);
  });
});
