import type { Knex } from 'knex';
import type { RequestContext } from '../context.js';
import type { ManifestService } from '../registry/manifests.js';
import { parseManifest, type Descriptor, type ParsedManifest } from '../registry/manifest-parser.js';
import type { UploadService } from '../registry/uploads.js';
import type { UpstreamClient } from './client.js';
import { UpstreamRequestError } from './errors.js';

/** Counters of one copy, reported after every manifest and blob. */
export interface CopyProgress {
  manifestsCopied: number;
  blobsCopied: number;
  /** Blobs the target repository had already, so they were not downloaded. */
  blobsSkipped: number;
  bytesCopied: number;
}

export interface CopierDeps {
  db: Knex;
  uploads: UploadService;
  manifests: ManifestService;
}

export interface CopyJob {
  client: UpstreamClient;
  /** Identity and logger that the pushes into the target are recorded with. */
  context: RequestContext;
  sourceRepository: string;
  targetRepository: string;
  signal: AbortSignal;
  onProgress(progress: CopyProgress): Promise<void>;
}

/** Deepest nesting of indexes copied: an index of indexes of images is depth 2. */
const MAX_INDEX_DEPTH = 4;

interface VerifiedManifest {
  digest: string;
  bytes: Buffer;
  parsed: ParsedManifest;
}

/**
 * Copies an image, or an index with every image it lists, from an upstream
 * into a repository, through the same upload and manifest services that a
 * push uses. The parts of each manifest go first, so every manifest put
 * finds what it references: blobs before an image manifest, child manifests
 * before their index. Blobs stream from the upstream into the blob store in
 * constant memory, and both the client and the upload service verify their
 * digests.
 */
export class ImageCopier {
  private readonly progress: CopyProgress = { manifestsCopied: 0, blobsCopied: 0, blobsSkipped: 0, bytesCopied: 0 };

  constructor(
    private readonly deps: CopierDeps,
    private readonly job: CopyJob,
  ) {}

  /**
   * Copies the manifest that `reference` (a tag or digest) names upstream and
   * stores it under `targetTag`, or only by digest when the tag is null.
   * Returns the digest and media type of the top-level manifest.
   */
  async copy(reference: string, targetTag: string | null): Promise<{ digest: string; mediaType: string; progress: CopyProgress }> {
    const root = await this.fetchManifest(reference, null);
    await this.copyParts(root, 0);
    await this.putManifest(root, targetTag ?? root.digest);
    return { digest: root.digest, mediaType: root.parsed.mediaType, progress: { ...this.progress } };
  }

  private async copyParts(manifest: VerifiedManifest, depth: number): Promise<void> {
    if (manifest.parsed.children.length > 0 && depth >= MAX_INDEX_DEPTH) {
      throw new UpstreamRequestError('invalid_response', `index ${manifest.digest} is nested more than ${MAX_INDEX_DEPTH} levels deep`, false);
    }

    for (const child of unique(manifest.parsed.children)) {
      this.job.signal.throwIfAborted();
      if (await this.targetHasManifest(child.digest)) continue;
      const fetched = await this.fetchManifest(child.digest, child);
      await this.copyParts(fetched, depth + 1);
      await this.putManifest(fetched, child.digest);
    }

    for (const blob of unique(manifest.parsed.blobs)) {
      this.job.signal.throwIfAborted();
      await this.copyBlob(blob);
    }
  }

  /** Fetches and parses a manifest. A child must also have the size that its index declares. */
  private async fetchManifest(reference: string, expected: Descriptor | null): Promise<VerifiedManifest> {
    const { client, sourceRepository } = this.job;
    const fetched = await client.getManifest(sourceRepository, reference);
    if (expected && fetched.bytes.length !== expected.size) {
      throw new UpstreamRequestError('digest_mismatch', `manifest ${expected.digest} is ${fetched.bytes.length} bytes but its index declares ${expected.size}`, false);
    }
    const parsed = parseManifest(fetched.bytes, fetched.contentType ?? undefined);
    return { digest: fetched.digest, bytes: fetched.bytes, parsed };
  }

  private async putManifest(manifest: VerifiedManifest, reference: string): Promise<void> {
    await this.deps.manifests.put(this.job.context, this.job.targetRepository, reference, manifest.bytes, manifest.parsed.mediaType);
    this.progress.manifestsCopied++;
    await this.job.onProgress({ ...this.progress });
  }

  /** Streams a blob into the target unless the target repository already has it. */
  private async copyBlob(blob: Descriptor): Promise<void> {
    const { client, context, sourceRepository, targetRepository } = this.job;
    if (await this.targetHasBlob(blob.digest)) {
      this.progress.blobsSkipped++;
      await this.job.onProgress({ ...this.progress });
      return;
    }

    const body = await client.openBlob(sourceRepository, blob);
    try {
      await this.deps.uploads.uploadMonolithic(context, targetRepository, blob.digest, { body, contentLength: blob.size, range: null });
    } finally {
      body.destroy();
    }
    this.progress.blobsCopied++;
    this.progress.bytesCopied += blob.size;
    context.logger.debug({ digest: blob.digest, size: blob.size }, 'blob imported');
    await this.job.onProgress({ ...this.progress });
  }

  // Only a blob linked to the target repository counts: linking one that another repository contains would grant access through a digest alone.
  private async targetHasBlob(digest: string): Promise<boolean> {
    const row = await this.deps.db('repository_blobs as l')
      .join('repositories as r', 'r.id', 'l.repository_id')
      .where({ 'r.name': this.job.targetRepository, 'l.digest': digest })
      .first('l.digest');
    return row !== undefined;
  }

  private async targetHasManifest(digest: string): Promise<boolean> {
    const row = await this.deps.db('manifests as m')
      .join('repositories as r', 'r.id', 'm.repository_id')
      .where({ 'r.name': this.job.targetRepository, 'm.digest': digest })
      .first('m.id');
    return row !== undefined;
  }
}

function unique(descriptors: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return descriptors.filter((descriptor) => {
    if (seen.has(descriptor.digest)) return false;
    seen.add(descriptor.digest);
    return true;
  });
}
