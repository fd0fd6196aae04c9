/**
 * The certification gate's rules, decided directly against a real
 * PostgreSQL database: content is pushed over HTTP by the administrator, and
 * certification rows are inserted by hand. The last part checks the events
 * that pulls over HTTP record.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { RequestContext } from '../../src/context.js';
import type { Principal } from '../../src/auth/identity-store.js';
import type { Grant } from '../../src/auth/permissions.js';
import { CertificationGate } from '../../src/policy/certification-gate.js';
import { attachmentProblem, attachmentRules, DEFAULT_ATTACHMENT_MAX_BYTES, DEFAULT_ATTACHMENT_MEDIA_TYPES, isFilesystemLayerType } from '../../src/policy/attachments.js';
import type { PullDecision } from '../../src/policy/pull-gate.js';
import {
  assertOciError,
  blobOf,
  dockerManifest,
  emptyConfigBlob,
  MEDIA,
  ociArtifactManifest,
  ociImageManifest,
  ociIndex,
  RegistryClient,
  uniqueContent,
  uniqueRepository,
  type ManifestDocument,
} from '../helpers/registry-client.js';
import { createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';
import { ATTACHMENT_MEDIA, blobsOf, certify, createGroup, createPolicy, decide, pushArtifact, pushCosignSignature, revoke } from '../helpers/certification.js';
import { CollectingEventSink } from '../helpers/events.js';

const RULES = attachmentRules(DEFAULT_ATTACHMENT_MEDIA_TYPES, DEFAULT_ATTACHMENT_MAX_BYTES);

describe('attachmentProblem', () => {
  const manifest = (document: object) => Buffer.from(JSON.stringify(document));
  const descriptor = (mediaType: string, size = 10) => ({ mediaType, size, digest: `sha256:${'a'.repeat(64)}` });

  const cases: Array<{ name: string; document: object; problem: RegExp | null }> = [
    { name: 'cosign signature', document: { config: descriptor(MEDIA.ociConfig), layers: [descriptor(ATTACHMENT_MEDIA.cosignSignatureLayer)] }, problem: null },
    { name: 'OCI 1.1 SBOM', document: { artifactType: 'application/spdx+json', config: descriptor(MEDIA.ociEmpty), layers: [descriptor('application/spdx+json')] }, problem: null },
    { name: 'media type with parameters', document: { config: descriptor(MEDIA.ociEmpty), layers: [descriptor('text/spdx; charset=utf-8')] }, problem: null },
    { name: 'tar+gzip layer', document: { config: descriptor(MEDIA.ociConfig), layers: [descriptor(MEDIA.ociLayer)] }, problem: /image filesystem layer/ },
    { name: 'Docker rootfs layer', document: { config: descriptor(MEDIA.ociEmpty), layers: [descriptor(MEDIA.dockerLayer)] }, problem: /image filesystem layer/ },
    { name: 'unknown layer type', document: { config: descriptor(MEDIA.ociEmpty), layers: [descriptor(ATTACHMENT_MEDIA.unknown)] }, problem: /not an allowed attachment type/ },
    { name: 'unknown artifactType', document: { artifactType: ATTACHMENT_MEDIA.unknown, config: descriptor(MEDIA.ociEmpty), layers: [descriptor('application/spdx+json')] }, problem: /artifactType/ },
    { name: 'Docker image config', document: { config: descriptor(MEDIA.dockerConfig), layers: [descriptor('application/spdx+json')] }, problem: /config media type/ },
    { name: 'image config without layers', document: { config: descriptor(MEDIA.ociConfig), layers: [] }, problem: /no layer/ },
    { name: 'image index', document: { manifests: [descriptor(MEDIA.ociManifest)] }, problem: /not an image manifest/ },
    { name: 'over the size limit', document: { config: descriptor(MEDIA.ociEmpty), layers: [descriptor('application/spdx+json', DEFAULT_ATTACHMENT_MAX_BYTES)] }, problem: /attachment limit/ },
  ];
  for (const { name, document, problem } of cases) {
    test(`${name} ${problem === null ? 'qualifies' : 'does not qualify'}`, () => {
      const found = attachmentProblem(manifest(document), RULES);
      if (problem === null) assert.equal(found, null);
      else assert.match(found ?? '', problem);
    });
  }

  test('isFilesystemLayerType finds every tar variant', () => {
    for (const type of [MEDIA.ociLayer, 'application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar+zstd', MEDIA.dockerLayer, 'application/x-tar']) {
      assert.equal(isFilesystemLayerType(type), true, type);
    }
    assert.equal(isFilesystemLayerType('application/vnd.startup+json'), false);
  });
});

let server: TestServer;
let admin: RegistryClient;
let gate: CertificationGate;

function principal(name: string, grants: Grant[], groups: string[] = []): Principal {
  return { kind: 'user', id: 0, name, subject: name, groups, grants, credentialsChangedAt: new Date(0) };
}

function contextFor(caller: Principal | null): RequestContext {
  return {
    requestId: randomUUID(),
    identity: caller === null ? { kind: 'anonymous' } : { kind: 'user', subject: caller.subject },
    principal: caller,
    clientAddress: '127.0.0.1',
    userAgent: 'test',
    logger: pino({ level: 'silent' }),
  };
}

// Repositories live under gate/, on which the deployer may only pull and the pusher may pull and push.
const deployer = principal('deployer', [{ pattern: 'gate/**', permissions: ['pull'] }]);
const pusher = principal('pusher', [{ pattern: 'gate/**', permissions: ['pull', 'push'] }]);
const reviewer = principal('reviewer', [{ pattern: 'gate/**', permissions: ['pull-uncertified'] }]);

function decideManifest(caller: Principal | null, repository: string, digest: string, existenceCheck = false): Promise<PullDecision> {
  return gate.decide(contextFor(caller), { repository, kind: 'manifest', digest, existenceCheck });
}

function decideBlob(caller: Principal | null, repository: string, digest: string, existenceCheck = false): Promise<PullDecision> {
  return gate.decide(contextFor(caller), { repository, kind: 'blob', digest, existenceCheck });
}

function reasonOf(decision: PullDecision): string {
  assert.equal(decision.allowed, false, 'expected a denial');
  return decision.allowed ? '' : decision.reason;
}

before(async () => {
  server = await startTestServer();
  admin = new RegistryClient(server.url, server.admin);
  gate = new CertificationGate(server.db, RULES, server.store);
});
after(() => server.close());

describe('manifest states', () => {
  test('pending manifest is denied with the missing roles', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository, 'v1');
    const reason = reasonOf(await decideManifest(deployer, repository, image.digest));
    assert.equal(reason, `${repository}@${image.digest} is not certified: waiting for it, security, qa (policy "default"); see GET /api/v1/certifications/status?repository=${repository}&reference=${image.digest}`);
  });

  test('partly approved manifest names the roles still missing', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    await certify(server.db, repository, image.digest, ['it']);
    assert.match(reasonOf(await decideManifest(deployer, repository, image.digest)), /waiting for security, qa \(policy "default"\)/);
  });

  test('rejected manifest names the rejecting role', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    await certify(server.db, repository, image.digest, ['it', 'security']);
    await decide(server.db, repository, image.digest, 'qa', 'reject');
    assert.match(reasonOf(await decideManifest(deployer, repository, image.digest)), /is not certified: rejected by qa/);
  });

  test('certified manifest is allowed as certified', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    await certify(server.db, repository, image.digest);
    assert.deepEqual(await decideManifest(deployer, repository, image.digest), { allowed: true, certification: { state: 'certified', policy: 'default', uncertified: false } });
  });

  test('revoked manifest is denied as revoked', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    await certify(server.db, repository, image.digest);
    await revoke(server.db, repository, image.digest);
    assert.match(reasonOf(await decideManifest(deployer, repository, image.digest)), /its certification was revoked; waiting for it, security, qa/);
  });

  test('approvals after a revocation certify again', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    await certify(server.db, repository, image.digest);
    await revoke(server.db, repository, image.digest);
    await sleep(5);
    await certify(server.db, repository, image.digest);
    assert.equal((await decideManifest(deployer, repository, image.digest)).allowed, true);
  });

  test('expired certification is denied with its expiry time', async () => {
    await createPolicy(server.db, { name: 'short-lived', pattern: 'gate/expiring/*', validitySeconds: 60 });
    const repository = uniqueRepository('gate/expiring');
    const image = await admin.pushImage(repository);
    await certify(server.db, repository, image.digest, undefined, new Date(Date.now() - 3600_000));
    assert.match(reasonOf(await decideManifest(deployer, repository, image.digest)), /its certification expired at \d{4}-\d\d-\d\dT.*\(policy "short-lived"\)/);
  });

  test('certification in another repository does not count', async () => {
    const repository = uniqueRepository('gate');
    const other = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    await admin.pushImage(other);
    await certify(server.db, other, image.digest);
    assert.equal((await decideManifest(deployer, repository, image.digest)).allowed, false);
  });
});

describe('image indexes', () => {
  let repository: string;
  let amd64: ManifestDocument;
  let arm64: ManifestDocument;
  let index: ManifestDocument;
  let outer: ManifestDocument;

  before(async () => {
    repository = uniqueRepository('gate');
    amd64 = await admin.pushImage(repository);
    arm64 = await admin.pushImage(repository);
    index = await admin.pushManifest(repository, 'multi', ociIndex([amd64.descriptor, arm64.descriptor]));
    outer = await admin.pushManifest(repository, 'outer', ociIndex([index.descriptor]));
  });

  test('child of an uncertified index is denied and says so', async () => {
    assert.match(reasonOf(await decideManifest(deployer, repository, amd64.digest)), /no image index that lists it is certified either/);
  });

  test('child of a certified index is allowed through it', async () => {
    await certify(server.db, repository, index.digest);
    assert.deepEqual(await decideManifest(deployer, repository, arm64.digest), {
      allowed: true,
      certification: { state: 'certified', policy: 'default', uncertified: false, via: 'index', certifiedDigest: index.digest },
    });
  });

  test('layer of a child of a certified index is allowed', async () => {
    await certify(server.db, repository, index.digest);
    const decision = await decideBlob(deployer, repository, blobsOf(amd64).layers[0]?.digest as string);
    assert.equal(decision.allowed, true);
  });

  test('certified outer index covers the grandchildren', async () => {
    const nested = uniqueRepository('gate');
    const child = await admin.pushImage(nested);
    const middle = await admin.pushManifest(nested, 'middle', ociIndex([child.descriptor]));
    const top = await admin.pushManifest(nested, 'top', ociIndex([middle.descriptor]));
    await certify(server.db, nested, top.digest);
    const decision = await decideManifest(deployer, nested, child.digest);
    assert.equal(decision.allowed && decision.certification?.certifiedDigest, top.digest);
  });

  test('certified child does not certify its index', async () => {
    const single = uniqueRepository('gate');
    const child = await admin.pushImage(single);
    const parent = await admin.pushManifest(single, 'multi', ociIndex([child.descriptor]));
    await certify(server.db, single, child.digest);
    assert.equal((await decideManifest(deployer, single, parent.digest)).allowed, false);
  });

  test('outer index stays uncertified when an inner one is certified', async () => {
    assert.equal((await decideManifest(deployer, repository, outer.digest)).allowed, false);
  });
});

describe('blobs', () => {
  test('layer of a certified image is allowed with the manifest as grounds', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    await certify(server.db, repository, image.digest);
    const decision = await decideBlob(deployer, repository, blobsOf(image).layers[0]?.digest as string);
    assert.deepEqual(decision, { allowed: true, certification: { state: 'certified', policy: 'default', uncertified: false, certifiedDigest: image.digest } });
  });

  test('layer of a pending image is denied with the manifest status', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    const layer = blobsOf(image).layers[0]?.digest as string;
    const reason = reasonOf(await decideBlob(deployer, repository, layer));
    assert.match(reason, new RegExp(`^blob ${layer} belongs to no manifest you may pull in ${repository}: ${repository}@${image.digest} is not certified`));
  });

  test('blob no manifest references is denied', async () => {
    const repository = uniqueRepository('gate');
    const blob = await admin.pushBlob(repository, uniqueContent('loose'));
    assert.match(reasonOf(await decideBlob(deployer, repository, blob.digest)), /is not referenced by any manifest there/);
  });

  test('blob no manifest references is allowed to pull-uncertified', async () => {
    const repository = uniqueRepository('gate');
    const blob = await admin.pushBlob(repository, uniqueContent('loose'));
    assert.equal((await decideBlob(reviewer, repository, blob.digest)).allowed, true);
  });

  test('layer shared by a certified and a pending image is allowed', async () => {
    const repository = uniqueRepository('gate');
    const layer = blobOf(uniqueContent('shared'));
    const configs = [blobOf(`{"id":"${randomUUID()}"}`, MEDIA.ociConfig), blobOf(`{"id":"${randomUUID()}"}`, MEDIA.ociConfig)];
    await admin.pushBlobs(repository, [layer, ...configs]);
    const pending = await admin.pushManifest(repository, 'pending', ociImageManifest((configs[0] as typeof layer).descriptor, [layer.descriptor]));
    const certified = await admin.pushManifest(repository, 'certified', ociImageManifest((configs[1] as typeof layer).descriptor, [layer.descriptor]));
    await certify(server.db, repository, certified.digest);
    assert.equal(pending.digest === certified.digest, false);
    assert.equal((await decideBlob(deployer, repository, layer.descriptor.digest)).allowed, true);
  });

  test('pusher may check that a blob of a pending image exists', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    assert.deepEqual(await decideBlob(pusher, repository, blobsOf(image).layers[0]?.digest as string, true), { allowed: true });
  });

  test('deployer may not check that a blob of a pending image exists', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    assert.equal((await decideBlob(deployer, repository, blobsOf(image).layers[0]?.digest as string, true)).allowed, false);
  });
});

describe('attachments', () => {
  let repository: string;
  let subject: ManifestDocument;
  let pendingSubject: ManifestDocument;

  before(async () => {
    repository = uniqueRepository('gate');
    subject = await admin.pushImage(repository, 'v1');
    pendingSubject = await admin.pushImage(repository, 'v2');
    await certify(server.db, repository, subject.digest);
  });

  test('cosign signature of a certified image is allowed as an attachment', async () => {
    const signature = await pushCosignSignature(admin, repository, subject.descriptor);
    assert.deepEqual(await decideManifest(deployer, repository, signature.digest), {
      allowed: true,
      certification: { state: 'certified', policy: 'default', uncertified: false, via: 'attachment', certifiedDigest: subject.digest },
    });
  });

  test('blobs of an allowed signature are allowed', async () => {
    const signature = await pushCosignSignature(admin, repository, subject.descriptor);
    const { config, layers } = blobsOf(signature);
    assert.equal((await decideBlob(deployer, repository, config.digest)).allowed, true);
    assert.equal((await decideBlob(deployer, repository, layers[0]?.digest as string)).allowed, true);
  });

  test('SBOM artifact of a certified image is allowed', async () => {
    const sbom = await pushArtifact(admin, repository, subject.descriptor, ATTACHMENT_MEDIA.spdx, blobOf(uniqueContent('{"spdxVersion":"SPDX-2.3"}'), ATTACHMENT_MEDIA.spdx));
    assert.equal((await decideManifest(deployer, repository, sbom.digest)).allowed, true);
  });

  test('signature of an attestation of a certified image is allowed', async () => {
    const attestation = await pushArtifact(admin, repository, subject.descriptor, ATTACHMENT_MEDIA.inToto, blobOf(uniqueContent('{"_type":"statement"}'), ATTACHMENT_MEDIA.inToto));
    const signature = await pushCosignSignature(admin, repository, attestation.descriptor);
    const decision = await decideManifest(deployer, repository, signature.digest);
    assert.equal(decision.allowed && decision.certification?.certifiedDigest, subject.digest);
  });

  test('signature of a pending image is denied and names the subject', async () => {
    const signature = await pushCosignSignature(admin, repository, pendingSubject.descriptor);
    assert.match(reasonOf(await decideManifest(deployer, repository, signature.digest)), new RegExp(`its subject ${pendingSubject.digest} may not be pulled either`));
  });

  test('attachment with a filesystem layer is denied', async () => {
    const smuggled = await admin.pushImage(repository, undefined, { subject: subject.descriptor });
    assert.match(reasonOf(await decideManifest(deployer, repository, smuggled.digest)), /cannot be pulled as an attachment of .* because its layer media type application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip is an image filesystem layer/);
  });

  test('layer of an attachment with a filesystem layer is denied', async () => {
    const smuggled = await admin.pushImage(repository, undefined, { subject: subject.descriptor });
    assert.equal((await decideBlob(deployer, repository, blobsOf(smuggled).layers[0]?.digest as string)).allowed, false);
  });

  test('attachment of an unknown type is denied', async () => {
    const unknown = await pushArtifact(admin, repository, subject.descriptor, ATTACHMENT_MEDIA.unknown, blobOf(uniqueContent('x'), ATTACHMENT_MEDIA.unknown));
    assert.match(reasonOf(await decideManifest(deployer, repository, unknown.digest)), /is not an allowed attachment type/);
  });

  test('attachment over the size limit is denied', async () => {
    const small = new CertificationGate(server.db, attachmentRules(DEFAULT_ATTACHMENT_MEDIA_TYPES, 100), server.store);
    const sbom = await pushArtifact(admin, repository, subject.descriptor, ATTACHMENT_MEDIA.spdx, blobOf(Buffer.alloc(200, 'a'), ATTACHMENT_MEDIA.spdx));
    const decision = await small.decide(contextFor(deployer), { repository, kind: 'manifest', digest: sbom.digest });
    assert.match(reasonOf(decision), /more than the attachment limit of 100/);
  });

  test('image layer relabelled as an SBOM layer stays denied', async () => {
    const pending = await admin.pushImage(repository);
    const layer = blobsOf(pending).layers[0];
    assert.ok(layer);
    const relabelled = { ...layer, mediaType: ATTACHMENT_MEDIA.spdx };
    await admin.pushBlob(repository, emptyConfigBlob());
    const artifact = await admin.pushManifest(repository, 'relabelled', ociArtifactManifest(ATTACHMENT_MEDIA.spdx, subject.descriptor, [relabelled]));
    assert.equal((await decideManifest(deployer, repository, artifact.digest)).allowed, true);
    assert.match(reasonOf(await decideBlob(deployer, repository, layer.digest)), new RegExp(`is part of the attachment ${repository}@${artifact.digest}, but also of ${repository}@${pending.digest}`));
  });
});

describe('cosign-style tags', () => {
  test('signature tag of a certified digest is allowed', async () => {
    const repository = uniqueRepository('gate');
    const subject = await admin.pushImage(repository, 'v1');
    await certify(server.db, repository, subject.digest);
    const signature = await pushCosignSignature(admin, repository, null, `${subject.digest.replace(':', '-')}.sig`);
    const decision = await decideManifest(deployer, repository, signature.digest);
    assert.equal(decision.allowed && decision.certification?.via, 'attachment');
  });

  test('signature tag of a pending digest is denied', async () => {
    const repository = uniqueRepository('gate');
    const subject = await admin.pushImage(repository, 'v1');
    const signature = await pushCosignSignature(admin, repository, null, `${subject.digest.replace(':', '-')}.sig`);
    assert.equal((await decideManifest(deployer, repository, signature.digest)).allowed, false);
  });

  test('signature tag on an image with a filesystem layer is denied', async () => {
    const repository = uniqueRepository('gate');
    const subject = await admin.pushImage(repository, 'v1');
    await certify(server.db, repository, subject.digest);
    const image = await admin.pushImage(repository, `${subject.digest.replace(':', '-')}.att`);
    assert.match(reasonOf(await decideManifest(deployer, repository, image.digest)), /image filesystem layer/);
  });
});

describe('uncertified access and dry-run', () => {
  test('pull-uncertified allows a pending manifest as uncertified', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    assert.deepEqual(await decideManifest(reviewer, repository, image.digest), { allowed: true, certification: { state: 'pending', policy: 'default', uncertified: true, via: 'pull-uncertified' } });
  });

  test('administrator holds pull-uncertified', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    const decision = await decideManifest(principal('root', [], ['admins']), repository, image.digest);
    assert.equal(decision.allowed && decision.certification?.via, 'pull-uncertified');
  });

  test('certified content is not recorded as uncertified for reviewers', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    await certify(server.db, repository, image.digest);
    const decision = await decideManifest(reviewer, repository, image.digest);
    assert.equal(decision.allowed && decision.certification?.uncertified, false);
  });

  test('uncertified group of the policy allows a pending manifest', async () => {
    await createPolicy(server.db, { name: 'qa-preview', pattern: 'gate/preview/*', uncertifiedGroups: ['qa-testers'] });
    const repository = uniqueRepository('gate/preview');
    const image = await admin.pushImage(repository);
    const tester = principal('tester', [{ pattern: 'gate/**', permissions: ['pull'] }], ['qa-testers']);
    const decision = await decideManifest(tester, repository, image.digest);
    assert.deepEqual(decision, { allowed: true, certification: { state: 'pending', policy: 'qa-preview', uncertified: true, via: 'uncertified-group' } });
  });

  test('dry-run policy allows and reports the denial it would make', async () => {
    await createPolicy(server.db, { name: 'trial', pattern: 'gate/trial/*', mode: 'dry-run' });
    const repository = uniqueRepository('gate/trial');
    const image = await admin.pushImage(repository);
    const decision = await decideManifest(deployer, repository, image.digest);
    assert.equal(decision.allowed, true);
    assert.equal(decision.allowed && decision.wouldDeny?.policy, 'trial');
    assert.match((decision.allowed && decision.wouldDeny?.reason) || '', /is not certified: waiting for it, security, qa \(policy "trial"\)/);
  });

  test('anonymous caller gets no uncertified access', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    assert.equal((await decideManifest(null, repository, image.digest)).allowed, false);
  });
});

describe('filterPullable', () => {
  test('keeps only the pullable digests', async () => {
    const repository = uniqueRepository('gate');
    const certified = await admin.pushImage(repository);
    const pending = await admin.pushImage(repository);
    await certify(server.db, repository, certified.digest);
    const kept = await gate.filterPullable(contextFor(deployer), repository, [certified.digest, pending.digest]);
    assert.deepEqual([...kept], [certified.digest]);
  });

  test('keeps every digest for pull-uncertified', async () => {
    const repository = uniqueRepository('gate');
    const pending = await admin.pushImage(repository);
    const kept = await gate.filterPullable(contextFor(reviewer), repository, [pending.digest]);
    assert.deepEqual([...kept], [pending.digest]);
  });
});

describe('cost of a decision', () => {
  test('certified manifest takes at most 6 queries', async () => {
    const repository = uniqueRepository('gate');
    const image = await admin.pushImage(repository);
    await certify(server.db, repository, image.digest);
    let queries = 0;
    const count = () => {
      queries += 1;
    };
    server.db.on('query', count);
    try {
      await decideManifest(deployer, repository, image.digest);
    } finally {
      server.db.off('query', count);
    }
    assert.ok(queries <= 6, `${queries} queries`);
  });

  test('layer shared by 200 pending images takes at most 10 queries', async () => {
    const repository = uniqueRepository('gate');
    const layer = blobOf(uniqueContent('popular'));
    await admin.pushBlob(repository, layer);
    for (let index = 0; index < 200; index += 1) {
      const config = blobOf(`{"n":${index},"id":"${randomUUID()}"}`, MEDIA.dockerConfig);
      await admin.pushBlob(repository, config);
      await admin.pushManifest(repository, `v${index}`, dockerManifest(config.descriptor, [{ ...layer.descriptor, mediaType: MEDIA.dockerLayer }]));
    }
    let queries = 0;
    const count = () => {
      queries += 1;
    };
    server.db.on('query', count);
    try {
      assert.equal((await decideBlob(deployer, repository, layer.descriptor.digest)).allowed, false);
    } finally {
      server.db.off('query', count);
    }
    assert.ok(queries <= 10, `${queries} queries`);
  });
});

describe('events of pulls over HTTP', () => {
  let eventServer: TestServer;
  let events: CollectingEventSink;
  let deployerClient: RegistryClient;
  let eventAdmin: RegistryClient;

  before(async () => {
    events = new CollectingEventSink();
    eventServer = await startTestServer({ events });
    eventAdmin = new RegistryClient(eventServer.url, eventServer.admin);
    const login = await createTestUser(eventServer.db, 'deployer');
    await grantToUser(eventServer.db, login.username, 'events/**', ['pull']);
    deployerClient = new RegistryClient(eventServer.url, login);
  });
  after(() => eventServer.close());

  test('certified pull records its certification', async () => {
    const repository = uniqueRepository('events');
    const image = await eventAdmin.pushImage(repository, 'v1');
    await certify(eventServer.db, repository, image.digest);
    const response = await deployerClient.getBytes(`/v2/${repository}/manifests/v1`);
    assert.equal(response.status, 200);
    const pull = events.ofAction('manifest.pull').find((event) => event.digest === image.digest);
    assert.deepEqual(pull?.certification, { state: 'certified', policy: 'default', uncertified: false });
  });

  test('blob pull records the manifest that allowed it', async () => {
    const repository = uniqueRepository('events');
    const image = await eventAdmin.pushImage(repository, 'v1');
    await certify(eventServer.db, repository, image.digest);
    const layer = blobsOf(image).layers[0]?.digest as string;
    assert.equal((await deployerClient.getBytes(`/v2/${repository}/blobs/${layer}`)).status, 200);
    const pull = events.ofAction('blob.pull').find((event) => event.digest === layer);
    assert.equal(pull?.certification?.certifiedDigest, image.digest);
  });

  test('administrator pull of a pending image is recorded as uncertified', async () => {
    const repository = uniqueRepository('events');
    const image = await eventAdmin.pushImage(repository, 'v1');
    assert.equal((await eventAdmin.getBytes(`/v2/${repository}/manifests/v1`)).status, 200);
    const pull = events.ofAction('manifest.pull').find((event) => event.digest === image.digest);
    assert.deepEqual(pull?.certification, { state: 'pending', policy: 'default', uncertified: true, via: 'pull-uncertified' });
  });

  test('uncertified group pull is recorded as uncertified', async () => {
    await createPolicy(eventServer.db, { name: 'events-preview', pattern: 'events/preview/*', uncertifiedGroups: ['testers'] });
    await createGroup(eventServer.db, 'testers', [{ pattern: 'events/**', permissions: ['pull'] }]);
    const tester = await createTestUser(eventServer.db, 'tester', ['testers']);
    const repository = uniqueRepository('events/preview');
    const image = await eventAdmin.pushImage(repository, 'v1');
    assert.equal((await new RegistryClient(eventServer.url, tester).getBytes(`/v2/${repository}/manifests/v1`)).status, 200);
    const pull = events.ofAction('manifest.pull').find((event) => event.digest === image.digest);
    assert.deepEqual(pull?.certification, { state: 'pending', policy: 'events-preview', uncertified: true, via: 'uncertified-group' });
  });

  test('dry-run pull succeeds and records the would-deny verdict on its pull event', async () => {
    await createPolicy(eventServer.db, { name: 'events-trial', pattern: 'events/trial/*', mode: 'dry-run' });
    const repository = uniqueRepository('events/trial');
    const image = await eventAdmin.pushImage(repository, 'v1');
    const response = await deployerClient.getBytes(`/v2/${repository}/manifests/v1`);
    assert.equal(response.status, 200);
    const pull = events.ofAction('manifest.pull').find((event) => event.digest === image.digest);
    assert.equal(pull?.certification?.via, 'dry-run');
    assert.equal(pull?.certification?.wouldDeny?.policy, 'events-trial');
    assert.match(pull?.certification?.wouldDeny?.reason ?? '', /is not certified: waiting for it, security, qa/);
  });

  test('denied pull records pull.denied with the reason', async () => {
    const repository = uniqueRepository('events');
    const image = await eventAdmin.pushImage(repository, 'v1');
    const response = await deployerClient.http.get(`/v2/${repository}/manifests/v1`);
    assertOciError(response, 403, 'DENIED');
    const denied = events.ofAction('pull.denied').find((event) => event.digest === image.digest);
    assert.match(denied?.reason ?? '', /is not certified/);
  });

  test('HEAD by a pusher records no pull', async () => {
    const pusherLogin = await createTestUser(eventServer.db, `pusher-${randomUUID().slice(0, 6)}`);
    await grantToUser(eventServer.db, pusherLogin.username, 'events/**', ['pull', 'push']);
    const repository = uniqueRepository('events');
    const image = await eventAdmin.pushImage(repository, 'v1');
    const before = events.events.length;
    const response = await new RegistryClient(eventServer.url, pusherLogin).http.head(`/v2/${repository}/manifests/${image.digest}`);
    assert.equal(response.status, 200);
    assert.equal(events.events.slice(before).filter((event) => event.action === 'manifest.pull' || event.action === 'pull.denied').length, 0);
  });
});
