import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { Knex } from 'knex';
import { archiveFormatOf } from '../policy/layer-content.js';
import { parseManifest, type Descriptor } from '../registry/manifest-parser.js';
import { StorageNotFoundError, type BlobStore } from '../storage/blob-store.js';
import { blobKey } from '../storage/keys.js';
import { DEFAULT_SCAN_LIMITS, ScanInputError as EngineInputError, scanImageConfig, scanLayer, type Finding, type ScanLimits } from './engine/index.js';
import { loadPreviewKey } from './preview-key.js';

/** Largest image configuration that is read into memory and scanned, in bytes. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** Config media types that scanImageConfig reads: the OCI and Docker image configurations. */
const IMAGE_CONFIG_TYPES: ReadonlySet<string> = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

/** Layer media types passed to the engine for archives recognised by their first bytes, whatever media type the manifest declares. */
const LAYER_TYPE_OF_FORMAT: Readonly<Record<string, string>> = {
  tar: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

/** Bytes read from the start of a layer to recognise its archive format; a tar header is 512 bytes. */
const SNIFF_BYTES = 512;

/** Outcome of one blob of an image in a scan. */
export interface BlobScanRecord {
  /** Layer digest, or `config`. */
  blob: string;
  mediaType: string;
  status: 'scanned' | 'skipped' | 'unscannable';
  /** Reason the blob was skipped or could not be scanned. */
  reason?: string;
  /** Archive entries read, for scanned layers. */
  entries?: number;
  /** Uncompressed bytes read, for scanned layers. */
  expandedBytes?: number;
}

/** Findings and per-blob records of one scan of an image manifest. */
export interface ImageScanResult {
  findings: Finding[];
  blobs: BlobScanRecord[];
}

/** A scan that cannot succeed however often it is retried: the manifest or a blob is gone, or the manifest is invalid. */
export class ScanContentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScanContentError';
  }
}

export interface ImageScannerDeps {
  db: Knex;
  store: BlobStore;
  limits?: ScanLimits;
}

/**
 * Scans the configuration and every layer of an image manifest for secrets.
 * Layers are streamed from the blob store into the engine, which
 * decompresses and reads them in constant memory.
 *
 * Which blobs are scanned:
 * - the config, when it is an OCI or Docker image configuration; any other
 *   config (an artifact's) is skipped with a note;
 * - every layer whose first bytes are a tar archive, or gzip or zstd
 *   compressed, whatever its declared media type, because clients unpack
 *   layers by their bytes;
 * - every other layer (a key file, a signature, an SBOM document) as one
 *   file, named by its `org.opencontainers.image.title` annotation;
 * - foreign layers that are not stored in the registry are skipped with a
 *   note. Other compressions (bzip2, xz) are reported unscannable.
 */
export class ImageScanner {
  private readonly limits: ScanLimits;
  private previewKey: Promise<Buffer> | null = null;

  constructor(private readonly deps: ImageScannerDeps) {
    this.limits = deps.limits ?? DEFAULT_SCAN_LIMITS;
  }

  /** Returns the preview key, loaded once; a failed load is tried again on the next scan. */
  private key(): Promise<Buffer> {
    this.previewKey ??= loadPreviewKey(this.deps.db).catch((error: unknown) => {
      this.previewKey = null;
      throw error;
    });
    return this.previewKey;
  }

  /** Scans the image manifest with this digest. Throws ScanContentError when its content is not available; other errors may be retried. */
  async scan(digest: string, signal: AbortSignal): Promise<ImageScanResult> {
    const previewKey = await this.key();
    const manifest: { content: Buffer; media_type: string } | undefined = await this.deps.db('manifests').where({ digest }).first('content', 'media_type');
    if (!manifest) throw new ScanContentError(`manifest ${digest} is no longer stored in any repository`);

    let document: { config: Descriptor; layers: Descriptor[] };
    let stored: Set<string>;
    try {
      const parsed = parseManifest(manifest.content, manifest.media_type);
      document = JSON.parse(manifest.content.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
      stored = new Set(parsed.blobs.map((blob) => blob.digest));
    } catch {
      throw new ScanContentError(`manifest ${digest} could not be parsed as an image manifest`);
    }
    if (!document.config || !Array.isArray(document.layers)) throw new ScanContentError(`manifest ${digest} is not an image manifest`);

    const findings: Finding[] = [];
    const blobs: BlobScanRecord[] = [];
    const config = await this.scanConfig(document.config, signal, previewKey);
    findings.push(...config.findings);
    blobs.push(config.record);

    for (const layer of document.layers) {
      signal.throwIfAborted();
      if (!stored.has(layer.digest)) {
        blobs.push({ blob: layer.digest, mediaType: layer.mediaType, status: 'skipped', reason: 'foreign layer that is stored outside the registry' });
        continue;
      }
      const scanned = await this.scanLayer(layer, signal, previewKey);
      findings.push(...scanned.findings);
      blobs.push(scanned.record);
    }
    return { findings, blobs };
  }

  private async scanConfig(config: Descriptor, signal: AbortSignal, previewKey: Buffer): Promise<{ findings: Finding[]; record: BlobScanRecord }> {
    const record = { blob: 'config', mediaType: config.mediaType };
    if (!IMAGE_CONFIG_TYPES.has(config.mediaType)) return { findings: [], record: { ...record, status: 'skipped', reason: 'not an image configuration' } };
    if (config.size > MAX_CONFIG_BYTES) {
      return { findings: [], record: { ...record, status: 'unscannable', reason: `the configuration is ${config.size} bytes; the limit is ${MAX_CONFIG_BYTES}` } };
    }

    const bytes = await readAll(await this.open(config.digest), signal);
    try {
      const findings = scanImageConfig(bytes, { previewKey }).map((finding) => ({ ...finding, layer: 'config' }));
      return { findings, record: { ...record, status: 'scanned' } };
    } catch (error) {
      if (error instanceof EngineInputError) return { findings: [], record: { ...record, status: 'unscannable', reason: error.message } };
      throw error;
    }
  }

  private async scanLayer(layer: Descriptor, signal: AbortSignal, previewKey: Buffer): Promise<{ findings: Finding[]; record: BlobScanRecord }> {
    const record = { blob: layer.digest, mediaType: layer.mediaType };
    if (layer.size === 0) return { findings: [], record: { ...record, status: 'skipped', reason: 'empty blob' } };

    const head = await readAll(await this.open(layer.digest, { start: 0, end: Math.min(SNIFF_BYTES, layer.size) - 1 }), signal);
    const format = archiveFormatOf(head);
    if (format !== null && LAYER_TYPE_OF_FORMAT[format] === undefined) {
      return { findings: [], record: { ...record, status: 'unscannable', reason: `the layer is ${format} compressed, which the scanner does not read` } };
    }
    const blob = await this.open(layer.digest);
    // A blob that is no archive (a key file, a document pushed as an artifact) is scanned as one file.
    const stream = format === null ? asSingleFileArchive(blob, layer) : blob;
    const mediaType = format === null ? LAYER_TYPE_OF_FORMAT.tar! : LAYER_TYPE_OF_FORMAT[format]!;
    try {
      const result = await scanLayer(stream, mediaType, layer.digest, this.limits, signal, { previewKey });
      const counts = { entries: result.entries, expandedBytes: result.expandedBytes };
      if (result.unscannable !== undefined) return { findings: result.findings, record: { ...record, status: 'unscannable', reason: result.unscannable, ...counts } };
      return { findings: result.findings, record: { ...record, status: 'scanned', ...counts } };
    } finally {
      stream.destroy();
      blob.destroy();
    }
  }

  private async open(digest: string, range?: { start: number; end: number }): Promise<Readable> {
    try {
      return await this.deps.store.read(blobKey(digest), range);
    } catch (error) {
      if (error instanceof StorageNotFoundError) throw new ScanContentError(`blob ${digest} is missing from storage`);
      throw error;
    }
  }
}

/** Annotation that names the file a blob holds, as ORAS and other artifact clients set it. */
const TITLE_ANNOTATION = 'org.opencontainers.image.title';

/**
 * Streams a blob as a tar archive with one entry, so the engine scans it as
 * a file: named by the descriptor's title annotation, or `blob` without one.
 */
function asSingleFileArchive(blob: Readable, layer: Descriptor): Readable {
  const title = layer.annotations?.[TITLE_ANNOTATION];
  const name = title !== undefined && title !== '' && !title.includes('\0') ? title.replace(/^\/+/, '') : 'blob';
  const pack = tar.pack();
  const entry = pack.entry({ name, size: layer.size, type: 'file' }, (error) => {
    if (error) pack.destroy(error);
    else pack.finalize();
  });
  blob.on('error', (error) => pack.destroy(error));
  blob.pipe(entry);
  return Readable.from(pack);
}

/** Reads a small stream into one buffer. */
async function readAll(stream: Readable, signal: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) {
      signal.throwIfAborted();
      chunks.push(chunk as Buffer);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}
