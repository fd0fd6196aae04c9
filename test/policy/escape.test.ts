/**
 * Every path to the bytes of an uncertified image, tried over HTTP by a
 * deployer: a user with pull on the repositories and push only on a mount
 * target. Each row must be denied; after certification, the certified
 * content and what it covers must be served.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { Response } from 'supertest';
import {
  assertOciError,
  blobOf,
  errorCodeOf,
  MEDIA,
  manifestFromText,
  ociImageManifest,
  ociIndex,
  RegistryClient,
  uniqueContent,
  type Descriptor,
  type ManifestDocument,
} from '../helpers/registry-client.js';
import { createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';
import { ATTACHMENT_MEDIA, blobsOf, certify, pushArtifact, pushCosignSignature } from '../helpers/certification.js';

const APP = 'escape/app';
const OTHER = 'escape/other';
const SHARED = 'escape/shared';
const TARGET = 'escape/target';
const CERTIFIED = 'escape/certified';
const SMUGGLE = 'escape/smuggle';

let server: TestServer;
let admin: RegistryClient;
let deployer: RegistryClient;

/** The uncertified image in APP, its index, and the certified content in CERTIFIED with its bad attachments. */
let image: ManifestDocument;
let layer: Descriptor;
let index: ManifestDocument;
let sibling: ManifestDocument;
let certifiedSubject: ManifestDocument;
let tarAttachment: ManifestDocument;
let cosignTagImage: ManifestDocument;
let signature: ManifestDocument;

before(async () => {
  server = await startTestServer();
  admin = new RegistryClient(server.url, server.admin);

  image = await admin.pushImage(APP, 'v1');
  layer = blobsOf(image).layers[0] as Descriptor;
  sibling = await admin.pushImage(APP);
  index = await admin.pushManifest(APP, 'multi', ociIndex([image.descriptor, sibling.descriptor]));

  // OTHER contains an unrelated image. SHARED links the same layer through an image that is certified there.
  await admin.pushImage(OTHER, 'v1');
  const sharedConfig = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux', shared: true }), MEDIA.ociConfig);
  await admin.pushBlob(SHARED, sharedConfig);
  const mount = await admin.http.post(`/v2/${SHARED}/blobs/uploads/?mount=${layer.digest}&from=${APP}`);
  assert.equal(mount.status, 201, 'the administrator mounts the layer into SHARED');
  const sharedImage = await admin.pushManifest(SHARED, 'v1', ociImageManifest(sharedConfig.descriptor, [layer]));
  await certify(server.db, SHARED, sharedImage.digest);
  await admin.pushImage(TARGET, 'seed');

  certifiedSubject = await admin.pushImage(CERTIFIED, 'v1');
  await certify(server.db, CERTIFIED, certifiedSubject.digest);
  tarAttachment = await admin.pushImage(CERTIFIED, undefined, { subject: certifiedSubject.descriptor });
  cosignTagImage = await admin.pushImage(CERTIFIED, `${certifiedSubject.digest.replace(':', '-')}.sig`);
  signature = await pushCosignSignature(admin, CERTIFIED, certifiedSubject.descriptor);

  const login = await createTestUser(server.db, 'deployer');
  for (const repository of [APP, OTHER, SHARED, CERTIFIED]) await grantToUser(server.db, login.username, repository, ['pull']);
  await grantToUser(server.db, login.username, TARGET, ['pull', 'push']);
  deployer = new RegistryClient(server.url, login);
});
after(() => server.close());

/** Asserts a denial: 403, and for GET the DENIED code. HEAD responses carry no body. */
function assertDenied(response: Response, method: 'GET' | 'HEAD'): void {
  assert.equal(response.status, 403, `expected 403, got ${response.status}: ${response.text}`);
  if (method === 'GET') assert.equal(errorCodeOf(response), 'DENIED', response.text);
}

interface EscapeRow {
  name: string;
  method: 'GET' | 'HEAD';
  path: () => string;
}

describe('escape paths to an uncertified image', () => {
  const rows: EscapeRow[] = [
    { name: 'manifest GET by tag', method: 'GET', path: () => `/v2/${APP}/manifests/v1` },
    { name: 'manifest HEAD by tag', method: 'HEAD', path: () => `/v2/${APP}/manifests/v1` },
    { name: 'manifest GET by digest', method: 'GET', path: () => `/v2/${APP}/manifests/${image.digest}` },
    { name: 'manifest HEAD by digest', method: 'HEAD', path: () => `/v2/${APP}/manifests/${image.digest}` },
    { name: 'layer GET in its repository', method: 'GET', path: () => `/v2/${APP}/blobs/${layer.digest}` },
    { name: 'layer HEAD in its repository', method: 'HEAD', path: () => `/v2/${APP}/blobs/${layer.digest}` },
    { name: 'config GET in its repository', method: 'GET', path: () => `/v2/${APP}/blobs/${blobsOf(image).config.digest}` },
    { name: 'index GET by tag', method: 'GET', path: () => `/v2/${APP}/manifests/multi` },
    { name: 'index child GET by digest', method: 'GET', path: () => `/v2/${APP}/manifests/${sibling.digest}` },
    { name: 'referrers of the uncertified image', method: 'GET', path: () => `/v2/${APP}/referrers/${image.digest}` },
    { name: 'attachment with a tar layer by digest', method: 'GET', path: () => `/v2/${CERTIFIED}/manifests/${tarAttachment.digest}` },
    { name: 'tar layer of that attachment', method: 'GET', path: () => `/v2/${CERTIFIED}/blobs/${blobsOf(tarAttachment).layers[0]?.digest}` },
    { name: 'cosign-style tag on an image', method: 'GET', path: () => `/v2/${CERTIFIED}/manifests/${certifiedSubject.digest.replace(':', '-')}.sig` },
    { name: 'layer of the cosign-tagged image', method: 'GET', path: () => `/v2/${CERTIFIED}/blobs/${blobsOf(cosignTagImage).layers[0]?.digest}` },
  ];

  for (const row of rows) {
    test(`${row.name} is denied`, async () => {
      const response = row.method === 'GET' ? await deployer.http.get(row.path()) : await deployer.http.head(row.path());
      assertDenied(response, row.method);
    });
  }

  test('layer through a repository without it returns 404', async () => {
    const response = await deployer.http.get(`/v2/${OTHER}/blobs/${layer.digest}`);
    assertOciError(response, 404, 'BLOB_UNKNOWN');
  });

  test('layer through a repository where a certified image has it returns 200', async () => {
    const response = await deployer.getBytes(`/v2/${SHARED}/blobs/${layer.digest}`);
    assert.equal(response.status, 200);
  });

  test('mount of the layer falls back to an upload session', async () => {
    const response = await deployer.http.post(`/v2/${TARGET}/blobs/uploads/?mount=${layer.digest}&from=${APP}`);
    assert.equal(response.status, 202, response.text);
  });

  test('mount leaves the layer unlinked in the target', async () => {
    await deployer.http.post(`/v2/${TARGET}/blobs/uploads/?mount=${layer.digest}&from=${APP}`);
    const response = await deployer.http.get(`/v2/${TARGET}/blobs/${layer.digest}`);
    assertOciError(response, 404, 'BLOB_UNKNOWN');
  });

  test('referrers of a certified subject leave out the tar attachment', async () => {
    const response = await deployer.getBytes(`/v2/${CERTIFIED}/referrers/${certifiedSubject.digest}`);
    assert.equal(response.status, 200);
    const listed = (JSON.parse(response.body.toString('utf8')) as { manifests: Descriptor[] }).manifests.map((entry) => entry.digest);
    assert.deepEqual(listed, [signature.digest]);
  });

  test('denial message says what is missing and where to look', async () => {
    const response = await deployer.http.get(`/v2/${APP}/manifests/v1`);
    const message = (response.body as { errors: Array<{ message: string }> }).errors[0]?.message;
    assert.equal(message, `${APP}@${image.digest} is not certified: waiting for it, security, qa (policy "default"); no image index that lists it is certified either; see GET /api/v1/certifications/status?repository=${APP}&reference=${image.digest}`);
  });
});

describe('pulls after certification', () => {
  before(async () => {
    await certify(server.db, APP, index.digest);
    await certify(server.db, APP, image.digest);
  });

  test('manifest GET by tag returns 200', async () => {
    assert.equal((await deployer.getBytes(`/v2/${APP}/manifests/v1`)).status, 200);
  });

  test('manifest HEAD by digest returns 200', async () => {
    assert.equal((await deployer.http.head(`/v2/${APP}/manifests/${image.digest}`)).status, 200);
  });

  test('layer GET returns the bytes', async () => {
    const response = await deployer.getBytes(`/v2/${APP}/blobs/${layer.digest}`);
    assert.equal(response.status, 200);
  });

  test('index child certified only through the index returns 200', async () => {
    assert.equal((await deployer.getBytes(`/v2/${APP}/manifests/${sibling.digest}`)).status, 200);
  });

  test('layer of that child returns 200', async () => {
    assert.equal((await deployer.getBytes(`/v2/${APP}/blobs/${blobsOf(sibling).layers[0]?.digest}`)).status, 200);
  });

  test('cosign signature of a certified image returns 200', async () => {
    assert.equal((await deployer.getBytes(`/v2/${CERTIFIED}/manifests/${signature.digest}`)).status, 200);
  });

  test('SBOM artifact of a certified image returns 200', async () => {
    const sbom = await pushArtifact(admin, CERTIFIED, certifiedSubject.descriptor, ATTACHMENT_MEDIA.spdx, blobOf(uniqueContent('{"spdxVersion":"SPDX-2.3"}'), ATTACHMENT_MEDIA.spdx));
    assert.equal((await deployer.getBytes(`/v2/${CERTIFIED}/manifests/${sbom.digest}`)).status, 200);
    assert.equal((await deployer.getBytes(`/v2/${CERTIFIED}/blobs/${blobsOf(sbom).layers[0]?.digest}`)).status, 200);
  });

  test('attachment with a tar layer stays denied', async () => {
    assertDenied(await deployer.http.get(`/v2/${CERTIFIED}/manifests/${tarAttachment.digest}`), 'GET');
  });

  test('mount of a certified layer returns 201', async () => {
    const response = await deployer.http.post(`/v2/${TARGET}/blobs/uploads/?mount=${layer.digest}&from=${APP}`);
    assert.equal(response.status, 201, response.text);
  });
});

/** Returns a one-file tar archive: a 512-byte POSIX header with `ustar` at byte 257, then the file's bytes padded to 512. */
function tarArchive(content: string): Buffer {
  const header = Buffer.alloc(512);
  header.write('bin/payload', 0, 'latin1');
  header.write('0000755\0', 100, 'latin1');
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.write('0', 156, 'latin1');
  header.write('ustar\0' + '00', 257, 'latin1');
  const body = Buffer.alloc(Math.ceil(content.length / 512) * 512);
  body.write(content, 0, 'latin1');
  return Buffer.concat([header, body, Buffer.alloc(1024)]);
}

/** Pushes a cosign-style signature of `subject` whose simple-signing layer carries `layerBytes`. */
async function pushDisguisedSignature(repository: string, subject: Descriptor, layerBytes: Buffer): Promise<ManifestDocument> {
  const config = blobOf(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [] }, id: randomUUID() }), MEDIA.ociConfig);
  const payload = blobOf(layerBytes, ATTACHMENT_MEDIA.cosignSignatureLayer);
  await admin.pushBlobs(repository, [config, payload]);
  return admin.pushManifest(repository, randomUUID(), ociImageManifest(config.descriptor, [payload.descriptor], { subject }));
}

describe('attachments that carry an image', () => {
  let subject: ManifestDocument;

  before(async () => {
    subject = await admin.pushImage(SMUGGLE, 'v1');
    await certify(server.db, SMUGGLE, subject.digest);
    await grantToUser(server.db, 'deployer', SMUGGLE, ['pull']);
  });

  const archives: Array<[string, () => Buffer]> = [
    ['gzip tar', () => gzipSync(tarArchive(`#!/bin/sh\necho ${randomUUID()}\n`))],
    ['plain tar', () => tarArchive(`#!/bin/sh\necho ${randomUUID()}\n`)],
    ['zstd frame', () => Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.from(randomUUID())])],
    ['bzip2 stream', () => Buffer.from(`BZh9${randomUUID()}`, 'latin1')],
    ['xz stream', () => Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.from(randomUUID())])],
  ];

  for (const [name, bytesOf] of archives) {
    test(`signature whose layer is a ${name} is denied`, async () => {
      const smuggled = await pushDisguisedSignature(SMUGGLE, subject.descriptor, bytesOf());
      assertDenied(await deployer.http.get(`/v2/${SMUGGLE}/manifests/${smuggled.digest}`), 'GET');
      assertDenied(await deployer.http.get(`/v2/${SMUGGLE}/blobs/${blobsOf(smuggled).layers[0]?.digest}`), 'GET');
    });
  }

  test('denial of an archive layer names the format', async () => {
    const smuggled = await pushDisguisedSignature(SMUGGLE, subject.descriptor, gzipSync(tarArchive(randomUUID())));
    const response = await deployer.http.get(`/v2/${SMUGGLE}/manifests/${smuggled.digest}`);
    const message = (response.body as { errors: Array<{ message: string }> }).errors[0]?.message ?? '';
    assert.match(message, /is a gzip archive by content/);
  });

  test('signature with a JSON payload returns 200', async () => {
    const signature = await pushDisguisedSignature(SMUGGLE, subject.descriptor, Buffer.from(JSON.stringify({ critical: {}, nonce: randomUUID() })));
    assert.equal((await deployer.getBytes(`/v2/${SMUGGLE}/manifests/${signature.digest}`)).status, 200);
    assert.equal((await deployer.getBytes(`/v2/${SMUGGLE}/blobs/${blobsOf(signature).layers[0]?.digest}`)).status, 200);
  });

  test('manifest with Layers next to layers returns 400', async () => {
    const signature = await pushCosignSignature(admin, SMUGGLE, subject.descriptor);
    const hidden = await admin.pushImage(SMUGGLE);
    const document = JSON.parse(signature.body.toString('utf8')) as Record<string, unknown>;
    const text = JSON.stringify({ ...document, Layers: blobsOf(hidden).layers });
    const response = await admin.putManifest(SMUGGLE, 'twin-keys', manifestFromText(text, MEDIA.ociManifest));
    assertOciError(response, 400, 'MANIFEST_INVALID');
    const message = (response.body as { errors: Array<{ message: string }> }).errors[0]?.message ?? '';
    assert.match(message, /"layers" and "Layers" differ only in case/);
  });

  test('layer of an image tagged as an attestation is denied', async () => {
    // The image is tagged like a cosign attestation of the certified subject
    // but does not qualify, and a qualifying signature reuses its layer.
    const tagged = await admin.pushImage(SMUGGLE, `${subject.digest.replace(':', '-')}.att`);
    const shared = blobsOf(tagged).layers[0] as Descriptor;
    const config = blobOf(JSON.stringify({ architecture: '', os: '', id: randomUUID() }), MEDIA.ociConfig);
    await admin.pushBlob(SMUGGLE, config);
    const relabelled = { ...shared, mediaType: ATTACHMENT_MEDIA.cosignSignatureLayer };
    const cover = await admin.pushManifest(SMUGGLE, randomUUID(), ociImageManifest(config.descriptor, [relabelled], { subject: subject.descriptor }));
    assert.equal((await deployer.getBytes(`/v2/${SMUGGLE}/manifests/${cover.digest}`)).status, 200, 'the signature itself qualifies');

    assertDenied(await deployer.http.get(`/v2/${SMUGGLE}/blobs/${shared.digest}`), 'GET');
  });
});
