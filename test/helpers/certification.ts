/**
 * Certification state for tests, written straight into the tables that the
 * pull gate reads, so the gate is tested without the certification API, and
 * builders for the attachments the gate rules are about.
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import {
  blobOf,
  emptyConfigBlob,
  MEDIA,
  ociArtifactManifest,
  ociImageManifest,
  type BlobContent,
  type Descriptor,
  type ManifestDocument,
  type RegistryClient,
} from './registry-client.js';

/** The roles that the default policy requires. */
export const DEFAULT_ROLES = ['it', 'security', 'qa'] as const;

async function repositoryIdOf(db: Knex, repository: string): Promise<number> {
  const row = await db('repositories').where({ name: repository }).first('id');
  if (!row) throw new Error(`no repository ${repository}: push to it first`);
  return Number(row.id);
}

/** Records one decision by one role on a digest. */
export async function decide(db: Knex, repository: string, digest: string, role: string, decision: 'approve' | 'reject', createdAt?: Date): Promise<void> {
  const repositoryId = await repositoryIdOf(db, repository);
  await db('certification_decisions').insert({ repository_id: repositoryId, digest, role, decision, actor: `test-${role}`, ...(createdAt ? { created_at: createdAt } : {}) });
}

/** Approves a digest for every role given, the three default roles unless set. */
export async function certify(db: Knex, repository: string, digest: string, roles: readonly string[] = DEFAULT_ROLES, createdAt?: Date): Promise<void> {
  for (const role of roles) await decide(db, repository, digest, role, 'approve', createdAt);
}

/** Revokes the certification of a digest. */
export async function revoke(db: Knex, repository: string, digest: string, reason = 'revoked by a test'): Promise<void> {
  const repositoryId = await repositoryIdOf(db, repository);
  await db('certification_revocations').insert({ repository_id: repositoryId, digest, reason, actor: 'test-security' });
}

/** A policy row as tests create it; unset fields take the table's defaults. */
export interface TestPolicy {
  name: string;
  pattern: string;
  requiredRoles?: string[];
  validitySeconds?: number | null;
  uncertifiedGroups?: string[];
  mode?: 'enforce' | 'dry-run';
}

/** Creates a policy. */
export async function createPolicy(db: Knex, policy: TestPolicy): Promise<void> {
  await db('policies').insert({
    name: policy.name,
    pattern: policy.pattern,
    required_roles: policy.requiredRoles ?? [...DEFAULT_ROLES],
    validity_seconds: policy.validitySeconds ?? null,
    uncertified_groups: policy.uncertifiedGroups ?? [],
    mode: policy.mode ?? 'enforce',
  });
}

/** Creates a custom group with the given grants; returns its name. */
export async function createGroup(db: Knex, name: string, grants: Array<{ pattern: string; permissions: string[] }> = []): Promise<string> {
  const [group] = await db('groups').insert({ name }).returning('id');
  for (const grant of grants) await db('grants').insert({ group_id: group.id, pattern: grant.pattern, permissions: grant.permissions });
  return name;
}

/** Media types of the attachments that the tests push. */
export const ATTACHMENT_MEDIA = {
  cosignSignatureLayer: 'application/vnd.dev.cosign.simplesigning.v1+json',
  spdx: 'application/spdx+json',
  inToto: 'application/vnd.in-toto+json',
  unknown: 'application/vnd.example.unknown.v1+json',
} as const;

/** Returns the config and layer descriptors of an image manifest document. */
export function blobsOf(manifest: ManifestDocument): { config: Descriptor; layers: Descriptor[] } {
  const document = JSON.parse(manifest.body.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  return { config: document.config, layers: document.layers };
}

/**
 * Pushes a cosign-style signature: an image config and one simple-signing
 * layer, with `subject` set when given. Returns the manifest.
 */
export async function pushCosignSignature(client: RegistryClient, repository: string, subject: Descriptor | null, tag?: string): Promise<ManifestDocument> {
  const config = blobOf(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [] }, id: randomUUID() }), MEDIA.ociConfig);
  const payload = blobOf(JSON.stringify({ critical: { image: { 'docker-manifest-digest': subject?.digest ?? '' } }, nonce: randomUUID() }), ATTACHMENT_MEDIA.cosignSignatureLayer);
  await client.pushBlobs(repository, [config, payload]);
  const manifest = ociImageManifest(config.descriptor, [payload.descriptor], subject ? { subject } : {});
  return client.pushManifest(repository, tag ?? manifest.digest, manifest);
}

/**
 * Pushes an OCI 1.1 artifact with the empty config and one layer of the
 * given media type and content, attached to `subject`.
 */
export async function pushArtifact(client: RegistryClient, repository: string, subject: Descriptor, artifactType: string, layer: BlobContent): Promise<ManifestDocument> {
  await client.pushBlobs(repository, [emptyConfigBlob(), layer]);
  const manifest = ociArtifactManifest(artifactType, subject, [layer.descriptor]);
  return client.pushManifest(repository, manifest.digest, manifest);
}
