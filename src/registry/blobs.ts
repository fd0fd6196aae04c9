import type { Readable } from 'node:stream';
import type { Knex } from 'knex';
import { RegistryError } from '../errors.js';
import type { RequestContext } from '../context.js';
import type { PullCertification, RegistryEventSink } from '../audit/registry-events.js';
import type { PullGate } from '../policy/pull-gate.js';
import type { BlobStore, ByteRange } from '../storage/blob-store.js';
import { StorageNotFoundError } from '../storage/blob-store.js';
import { databaseErrorKind } from '../db/errors.js';
import { findRepositoryId } from './repositories.js';
import { parseDigest } from './reference.js';
import { enforcePullDecision } from './pull-decisions.js';

/** A blob found in a repository. */
export interface BlobInfo {
  digest: string;
  size: number;
  storageKey: string;
  /** The pull gate's grounds for serving the blob, for its pull event. */
  certification?: PullCertification;
}

export interface BlobServiceDeps {
  db: Knex;
  store: BlobStore;
  events: RegistryEventSink;
  gate: PullGate;
}

/** Blob reads and link removal. A blob is visible in a repository only through its link row. */
export class BlobService {
  constructor(private readonly deps: BlobServiceDeps) {}

  /**
   * Returns a blob linked to the repository after the pull gate allowed it.
   * `head` marks a HEAD request, which the gate treats as an existence check.
   * Throws BLOB_UNKNOWN or DENIED.
   */
  async find(context: RequestContext, repository: string, digestText: string, options: { head: boolean }): Promise<BlobInfo> {
    const digest = parseDigest(digestText);
    const { db, gate, events } = this.deps;
    const row: { digest: string; size: number; storage_key: string } | undefined = await db('repository_blobs as l')
      .join('repositories as r', 'r.id', 'l.repository_id')
      .join('blobs as b', 'b.digest', 'l.digest')
      .where({ 'r.name': repository, 'l.digest': digest.value })
      .first('b.digest', 'b.size', 'b.storage_key');
    if (!row) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest.value} is not in repository ${repository}`, { repository, digest: digest.value });

    const request = { repository, kind: 'blob' as const, digest: digest.value, existenceCheck: options.head };
    const certification = await enforcePullDecision(events, context, request, await gate.decide(context, request));
    return { digest: row.digest, size: Number(row.size), storageKey: row.storage_key, ...(certification ? { certification } : {}) };
  }

  /** Opens the blob's bytes, or an inclusive range of them, and records the pull. */
  async open(context: RequestContext, repository: string, blob: BlobInfo, range: ByteRange | null): Promise<Readable> {
    try {
      const stream = await this.deps.store.read(blob.storageKey, range ?? undefined);
      const size = range ? range.end - range.start + 1 : blob.size;
      await this.deps.events.record(context, { action: 'blob.pull', repository, digest: blob.digest, size, ...(blob.certification ? { certification: blob.certification } : {}) }, null);
      return stream;
    } catch (error) {
      if (error instanceof StorageNotFoundError) {
        context.logger.error({ digest: blob.digest, repository }, 'blob metadata exists but its bytes are missing from storage');
        throw new RegistryError('BLOB_UNKNOWN', `blob unknown: the bytes of ${blob.digest} are missing from storage`, { digest: blob.digest });
      }
      throw error;
    }
  }

  /**
   * Removes the blob's link from one repository. Other repositories keep
   * theirs, and the bytes stay in storage. A blob that a manifest in the
   * repository references cannot be unlinked before that manifest is deleted.
   */
  async unlink(context: RequestContext, repository: string, digestText: string): Promise<void> {
    const digest = parseDigest(digestText);
    const { db, events } = this.deps;
    const repositoryId = await findRepositoryId(db, repository);
    const unknown = new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest.value} is not in repository ${repository}`, { repository, digest: digest.value });
    if (repositoryId === null) throw unknown;

    try {
      await db.transaction(async (trx) => {
        const referencing = await trx('manifest_blobs as mb').join('manifests as m', 'm.id', 'mb.manifest_id').where({ 'mb.repository_id': repositoryId, 'mb.digest': digest.value }).first('m.digest');
        if (referencing) {
          throw new RegistryError('DENIED', `blob is referenced by manifest ${referencing.digest} in this repository: delete that manifest first`, { manifest: referencing.digest }, 409);
        }
        const deleted = await trx('repository_blobs').where({ repository_id: repositoryId, digest: digest.value }).delete();
        if (deleted === 0) throw unknown;
        await events.record(context, { action: 'blob.delete', repository, digest: digest.value }, trx);
      });
    } catch (error) {
      if (databaseErrorKind(error) === 'foreign_key_violation') {
        throw new RegistryError('DENIED', 'blob is referenced by a manifest in this repository: delete that manifest first', undefined, 409);
      }
      throw error;
    }
  }
}
