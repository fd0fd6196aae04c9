import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { RegistryError } from '../errors.js';
import type { RequestContext } from '../context.js';
import type { RegistryEventSink } from '../audit/registry-events.js';
import type { PullGate } from '../policy/pull-gate.js';
import { databaseErrorKind, violatedConstraint } from '../db/errors.js';
import { ensureRepositoryId, findRepositoryId } from './repositories.js';
import { parseDigest, parseManifestReference, type ManifestReference } from './reference.js';
import { listReferrers } from './listings.js';
import { enforcePullDecision } from './pull-decisions.js';
import { parseManifest, type Descriptor } from './manifest-parser.js';

/** Largest manifest accepted, in bytes (4 MiB, the limit the OCI Distribution Specification suggests). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** A stored manifest, exactly as it was pushed. */
export interface StoredManifest {
  digest: string;
  mediaType: string;
  content: Buffer;
  size: number;
}

interface ManifestRow {
  id: number;
  digest: string;
  media_type: string;
  content: Buffer;
  size: number;
}

/** A manifest that a push stored, as a ScanScheduler receives it. */
export interface PushedManifest {
  digest: string;
  mediaType: string;
  /** The config and the layers stored in the registry. */
  blobs: Descriptor[];
}

/**
 * Queues secret scans of pushed manifests. The registry calls it for every
 * stored manifest, imports included, because they are pushed through
 * ManifestService too.
 */
export interface ScanScheduler {
  /** Called before the push transaction opens, for set-up that must not run inside it. */
  prepare(): Promise<void>;
  /** Queues a scan inside the push transaction, so the manifest and its scan commit together. Returns whether a scan was queued. */
  schedule(trx: Knex.Transaction, manifest: PushedManifest): Promise<boolean>;
  /** Called after the push transaction committed a queued scan. */
  notify(): void;
}

export interface ManifestServiceDeps {
  db: Knex;
  events: RegistryEventSink;
  gate: PullGate;
  /** Secret scan queue; without it, pushes queue no scans. */
  scans?: ScanScheduler;
}

function computeDigest(algorithm: 'sha256' | 'sha512', body: Buffer): string {
  return `${algorithm}:${createHash(algorithm).update(body).digest('hex')}`;
}

function uniqueDigests(descriptors: Descriptor[]): string[] {
  return [...new Set(descriptors.map((descriptor) => descriptor.digest))];
}

/** Manifests and tags: push, pull and delete, with every reference checked in the database. */
export class ManifestService {
  constructor(private readonly deps: ManifestServiceDeps) {}

  /**
   * Stores a manifest under a tag or a digest. The bytes are kept as sent;
   * the digest is the sha256 of those bytes (or the algorithm of the digest
   * in the URL). Every referenced blob and child manifest must already be in
   * the repository. Returns the digest and the subject, if any.
   */
  async put(context: RequestContext, repository: string, referenceText: string, body: Buffer, contentType: string | undefined): Promise<{ digest: string; subject: string | null }> {
    const reference = parseManifestReference(referenceText);
    if (body.length > MAX_MANIFEST_BYTES) {
      throw new RegistryError('MANIFEST_INVALID', `manifest is ${body.length} bytes; the limit is ${MAX_MANIFEST_BYTES}`, { size: body.length, limit: MAX_MANIFEST_BYTES }, 413);
    }

    const algorithm = reference.kind === 'digest' ? reference.digest.algorithm : 'sha256';
    const digest = computeDigest(algorithm, body);
    if (reference.kind === 'digest' && reference.digest.value !== digest) {
      throw new RegistryError('DIGEST_INVALID', 'the manifest body does not hash to the digest in the URL', { expected: reference.digest.value, actual: digest });
    }
    const parsed = parseManifest(body, contentType);

    const { db, events, scans } = this.deps;
    const repositoryId = await ensureRepositoryId(db, repository);
    if (scans) await scans.prepare();
    let scanQueued = false;
    try {
      await db.transaction(async (trx) => {
        const blobDigests = uniqueDigests(parsed.blobs);
        const childDigests = uniqueDigests(parsed.children);
        await this.checkBlobs(trx, repositoryId, parsed.blobs);
        const childIds = await this.findChildren(trx, repositoryId, parsed.children);

        const inserted: Array<{ id: number }> = await trx('manifests')
          .insert({
            repository_id: repositoryId,
            digest,
            media_type: parsed.mediaType,
            content: body,
            size: body.length,
            artifact_type: parsed.artifactType,
            subject_digest: parsed.subject?.digest ?? null,
            annotations: parsed.annotations ? JSON.stringify(parsed.annotations) : null,
            reference_count: blobDigests.length + childDigests.length,
          })
          .onConflict(['repository_id', 'digest'])
          .ignore()
          .returning('id');
        const manifestId = inserted[0]?.id ?? (await this.findManifest(trx, repositoryId, { kind: 'digest', digestValue: digest }))?.id;
        if (manifestId === undefined) throw new Error(`manifest ${digest} was neither inserted nor found`);

        if (inserted.length > 0) {
          if (blobDigests.length > 0) await trx('manifest_blobs').insert(blobDigests.map((blob) => ({ manifest_id: manifestId, repository_id: repositoryId, digest: blob })));
          if (childIds.length > 0) await trx('manifest_children').insert(childIds.map((childId) => ({ parent_id: manifestId, child_id: childId })));
        }

        if (scans) scanQueued = await scans.schedule(trx, { digest, mediaType: parsed.mediaType, blobs: parsed.blobs });

        let previousDigest: string | null | undefined;
        if (reference.kind === 'tag') previousDigest = await this.moveTag(trx, repositoryId, reference.tag, manifestId, digest);
        await events.record(
          context,
          { action: 'manifest.push', repository, digest, mediaType: parsed.mediaType, size: body.length, ...(reference.kind === 'tag' ? { tag: reference.tag, previousDigest } : {}) },
          trx,
        );
      });
    } catch (error) {
      // A concurrent delete of a referenced blob link surfaces as a foreign key violation.
      if (databaseErrorKind(error) === 'foreign_key_violation') {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', 'a blob or manifest this manifest references was removed from the repository while it was pushed', { constraint: violatedConstraint(error) });
      }
      throw error;
    }
    if (scanQueued) scans?.notify();
    return { digest, subject: parsed.subject?.digest ?? null };
  }

  /**
   * Returns a manifest by tag or digest after the pull gate allowed it, and
   * records the pull. A HEAD sends no content, so it is recorded only when it
   * resolves a tag, as containerd does before it pulls by digest. Throws
   * MANIFEST_UNKNOWN or DENIED.
   */
  async get(context: RequestContext, repository: string, referenceText: string, options: { head: boolean }): Promise<StoredManifest> {
    const reference = parseManifestReference(referenceText);
    const { db, gate, events } = this.deps;
    const repositoryId = await findRepositoryId(db, repository);
    const row = repositoryId === null ? undefined : await this.findManifest(db, repositoryId, reference.kind === 'tag' ? reference : { kind: 'digest', digestValue: reference.digest.value });
    if (!row) {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${referenceText} is not in repository ${repository}`, { repository, reference: referenceText });
    }

    const tag = reference.kind === 'tag' ? reference.tag : undefined;
    const request = { repository, kind: 'manifest' as const, digest: row.digest, existenceCheck: options.head, ...(tag ? { tag } : {}) };
    const certification = await enforcePullDecision(events, context, request, await gate.decide(context, request));
    if (!options.head) {
      await events.record(
        context,
        { action: 'manifest.pull', repository, digest: row.digest, mediaType: row.media_type, size: row.size, ...(tag ? { tag } : {}), ...(certification ? { certification } : {}) },
        null,
      );
    } else if (tag) {
      await events.record(context, { action: 'manifest.head', repository, digest: row.digest, mediaType: row.media_type, tag, ...(certification ? { certification } : {}) }, null);
    }
    return { digest: row.digest, mediaType: row.media_type, content: row.content, size: row.size };
  }

  /**
   * Builds the referrers index of a subject. The caller must be allowed to
   * pull the subject (DENIED otherwise), and the index lists only the
   * referrers that the caller may pull.
   */
  async referrers(context: RequestContext, repository: string, subjectText: string, artifactType: string | null): Promise<{ index: object; filtered: boolean }> {
    const subject = parseDigest(subjectText);
    const { db, gate, events } = this.deps;
    const request = { repository, kind: 'manifest' as const, digest: subject.value };
    await enforcePullDecision(events, context, request, await gate.decide(context, request));
    return listReferrers(db, repository, subject.value, artifactType, (digests) => gate.filterPullable(context, repository, digests));
  }

  /**
   * Deletes by digest (the manifest and every tag on it) or by tag (only the
   * tag). A manifest that an index in the repository still lists cannot be
   * deleted before that index.
   */
  async delete(context: RequestContext, repository: string, referenceText: string): Promise<void> {
    const reference = parseManifestReference(referenceText);
    const { db, events } = this.deps;
    const repositoryId = await findRepositoryId(db, repository);
    const unknown = new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${referenceText} is not in repository ${repository}`, { repository, reference: referenceText });
    if (repositoryId === null) throw unknown;

    if (reference.kind === 'tag') {
      await db.transaction(async (trx) => {
        const row = await this.findManifest(trx, repositoryId, reference);
        if (!row) throw unknown;
        await trx('tags').where({ repository_id: repositoryId, name: reference.tag }).delete();
        await trx('tag_history').insert({ repository_id: repositoryId, tag: reference.tag, old_digest: row.digest, new_digest: null });
        await events.record(context, { action: 'tag.delete', repository, tag: reference.tag, digest: row.digest }, trx);
      });
      return;
    }

    try {
      await db.transaction(async (trx) => {
        const row = await this.findManifest(trx, repositoryId, { kind: 'digest', digestValue: reference.digest.value });
        if (!row) throw unknown;
        const parent = await trx('manifest_children as c').join('manifests as m', 'm.id', 'c.parent_id').where('c.child_id', row.id).first('m.digest');
        if (parent) {
          throw new RegistryError('DENIED', `manifest is listed by image index ${parent.digest} in this repository: delete that index first`, { index: parent.digest }, 409);
        }
        const tags: Array<{ name: string }> = await trx('tags').where({ manifest_id: row.id }).select('name');
        if (tags.length > 0) {
          await trx('tag_history').insert(tags.map((tag) => ({ repository_id: repositoryId, tag: tag.name, old_digest: row.digest, new_digest: null })));
        }
        await trx('manifests').where({ id: row.id }).delete();
        await events.record(context, { action: 'manifest.delete', repository, digest: row.digest }, trx);
      });
    } catch (error) {
      if (databaseErrorKind(error) === 'foreign_key_violation') {
        throw new RegistryError('DENIED', 'manifest is listed by an image index in this repository: delete that index first', undefined, 409);
      }
      throw error;
    }
  }

  private async checkBlobs(trx: Knex.Transaction, repositoryId: number, descriptors: Descriptor[]): Promise<void> {
    if (descriptors.length === 0) return;
    const rows: Array<{ digest: string; size: number }> = await trx('repository_blobs as l')
      .join('blobs as b', 'b.digest', 'l.digest')
      .where('l.repository_id', repositoryId)
      .whereIn('l.digest', uniqueDigests(descriptors))
      .forShare()
      .select('b.digest', 'b.size');
    const sizes = new Map(rows.map((row) => [row.digest, Number(row.size)]));

    const missing = uniqueDigests(descriptors).filter((digest) => !sizes.has(digest));
    if (missing.length > 0) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest references ${missing.length} blob(s) that are not in this repository: push them first`, { missing: missing.slice(0, 20) });
    }
    const wrongSize = descriptors.find((descriptor) => sizes.get(descriptor.digest) !== descriptor.size);
    if (wrongSize) {
      throw new RegistryError('MANIFEST_INVALID', `manifest invalid: descriptor of ${wrongSize.digest} declares ${wrongSize.size} bytes but the blob has ${sizes.get(wrongSize.digest)}`, {
        digest: wrongSize.digest,
        declared: wrongSize.size,
        actual: sizes.get(wrongSize.digest),
      });
    }
  }

  private async findChildren(trx: Knex.Transaction, repositoryId: number, descriptors: Descriptor[]): Promise<number[]> {
    if (descriptors.length === 0) return [];
    const digests = uniqueDigests(descriptors);
    const rows: Array<{ id: number; digest: string; size: number }> = await trx('manifests')
      .where('repository_id', repositoryId)
      .whereIn('digest', digests)
      .forShare()
      .select('id', 'digest', 'size');
    const byDigest = new Map(rows.map((row) => [row.digest, row]));
    const missing = digests.filter((digest) => !byDigest.has(digest));
    if (missing.length > 0) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `index references ${missing.length} manifest(s) that are not in this repository: push them first`, { missing: missing.slice(0, 20) });
    }
    const wrongSize = descriptors.find((descriptor) => Number(byDigest.get(descriptor.digest)?.size) !== descriptor.size);
    if (wrongSize) {
      throw new RegistryError('MANIFEST_INVALID', `manifest invalid: descriptor of ${wrongSize.digest} declares ${wrongSize.size} bytes but that manifest has ${byDigest.get(wrongSize.digest)?.size}`, {
        digest: wrongSize.digest,
      });
    }
    return rows.map((row) => Number(row.id));
  }

  /** Points a tag at a manifest and records the move; returns the digest it pointed at before, or null. */
  private async moveTag(trx: Knex.Transaction, repositoryId: number, tag: string, manifestId: number, digest: string): Promise<string | null> {
    const previous = await trx('tags as t').join('manifests as m', 'm.id', 't.manifest_id').where({ 't.repository_id': repositoryId, 't.name': tag }).forUpdate().first('m.digest');
    const previousDigest: string | null = previous?.digest ?? null;
    if (previousDigest === digest) return previousDigest;

    await trx('tags')
      .insert({ repository_id: repositoryId, name: tag, manifest_id: manifestId, updated_at: trx.fn.now() })
      .onConflict(['repository_id', 'name'])
      .merge(['manifest_id', 'updated_at']);
    await trx('tag_history').insert({ repository_id: repositoryId, tag, old_digest: previousDigest, new_digest: digest });
    return previousDigest;
  }

  private async findManifest(db: Knex, repositoryId: number, reference: Extract<ManifestReference, { kind: 'tag' }> | { kind: 'digest'; digestValue: string }): Promise<ManifestRow | undefined> {
    const row: ManifestRow | undefined =
      reference.kind === 'tag'
        ? await db('tags as t').join('manifests as m', 'm.id', 't.manifest_id').where({ 't.repository_id': repositoryId, 't.name': reference.tag }).first('m.id', 'm.digest', 'm.media_type', 'm.content', 'm.size')
        : await db('manifests').where({ repository_id: repositoryId, digest: reference.digestValue }).first('id', 'digest', 'media_type', 'content', 'size');
    return row ? { ...row, id: Number(row.id), size: Number(row.size) } : undefined;
  }
}
