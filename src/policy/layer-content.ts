import type { Readable } from 'node:stream';
import type { BlobStore } from '../storage/blob-store.js';
import { blobKey } from '../storage/keys.js';

/** Number of bytes read from the start of a blob to detect an archive, because a tar header is 512 bytes. */
const SNIFF_BYTES = 512;

/** Max number of verdicts kept in memory. When the cache is full, the oldest verdict is dropped. */
const MAX_CACHED_VERDICTS = 10_000;

/** Magic numbers of compression formats, which containers/image detects from the bytes whatever the declared media type is. */
const COMPRESSION_MAGIC: ReadonlyArray<{ format: string; bytes: Buffer }> = [
  { format: 'gzip', bytes: Buffer.from([0x1f, 0x8b]) },
  { format: 'zstd', bytes: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) },
  { format: 'bzip2', bytes: Buffer.from('BZh', 'latin1') },
  { format: 'xz', bytes: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
];

/** The POSIX tar header stores the magic `ustar` at byte 257. */
const TAR_MAGIC = Buffer.from('ustar', 'latin1');
const TAR_MAGIC_OFFSET = 257;

/**
 * Returns the archive or compression format that the first bytes of a blob
 * start with (gzip, zstd, bzip2, xz or tar), or null when they start with
 * none of them.
 */
export function archiveFormatOf(head: Buffer): string | null {
  const compression = COMPRESSION_MAGIC.find(({ bytes }) => head.subarray(0, bytes.length).equals(bytes));
  if (compression !== undefined) return compression.format;
  if (head.subarray(TAR_MAGIC_OFFSET, TAR_MAGIC_OFFSET + TAR_MAGIC.length).equals(TAR_MAGIC)) return 'tar';
  return null;
}

/**
 * Detects archives among blobs by their content, not by their declared
 * media type: containers/image and other clients detect compression from
 * the bytes and unpack a gzip tar declared as a JSON signature. Blobs are
 * content-addressed and immutable, so the verdict for a digest is cached.
 */
export class ArchiveDetector {
  private readonly verdicts = new Map<string, string | null>();

  constructor(private readonly store: BlobStore) {}

  /** Returns the archive format of the stored blob, or null when it is not an archive. Throws StorageNotFoundError when the blob is missing. */
  async formatOf(digest: string, size: number): Promise<string | null> {
    const cached = this.verdicts.get(digest);
    if (cached !== undefined) return cached;
    // A zero-length range is invalid for every store, and an empty blob is no archive.
    if (size <= 0) return null;

    const head = await readAll(await this.store.read(blobKey(digest), { start: 0, end: Math.min(SNIFF_BYTES, size) - 1 }));
    const format = archiveFormatOf(head);
    this.remember(digest, format);
    return format;
  }

  private remember(digest: string, format: string | null): void {
    if (this.verdicts.size >= MAX_CACHED_VERDICTS) {
      const oldest = this.verdicts.keys().next().value;
      if (oldest !== undefined) this.verdicts.delete(oldest);
    }
    this.verdicts.set(digest, format);
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}
