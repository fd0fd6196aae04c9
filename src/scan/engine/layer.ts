import { Readable, pipeline } from 'node:stream';
import { setImmediate } from 'node:timers/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { classifyPath } from './file-kinds.js';
import { Pkcs12Reader, looksLikePfx } from './pkcs12.js';
import { FindingCollector } from './redaction.js';
import { MAX_JSON_BYTES, detectJsonFile } from './structured.js';
import { TextScanner } from './text-scanner.js';
import { DEFAULT_SCAN_LIMITS, type LayerScanResult, type PreviewOptions, type ScanLimits } from './types.js';
import { decompressZstd } from './zstd.js';

/**
 * Decompressed bytes after which the scan lets the event loop run. zstd is decoded in JavaScript, and
 * a buffered input resolves every await at once. Without these pauses a small layer that expands to
 * gigabytes blocks the process for the whole scan, so no timer (such as a lease renewal) and no request runs.
 */
const YIELD_EVERY_BYTES = 1024 * 1024;

/** Bytes at the start of a file that decide whether it is binary: a NUL among them makes it so, as git and grep decide. */
const BINARY_SNIFF_BYTES = 8192;

type Compression = 'gzip' | 'zstd' | 'none';

/** Magic numbers of compressions that layers may not use; such a layer is reported unscannable. */
const UNSUPPORTED_MAGIC: ReadonlyArray<[string, Buffer]> = [
  ['bzip2', Buffer.from('BZh')],
  ['xz', Buffer.from('fd377a585a00', 'hex')],
  ['lz4', Buffer.from('04224d18', 'hex')],
];

/** Stop state: the reason the scan ended early, and the entry being read, which a stop must destroy. */
interface StopState {
  reason: string;
  entry: { destroy(error?: Error): void } | null;
}

/** Raised inside the scan to stop it at a limit; never leaves scanLayer. */
class LimitReached extends Error {}

/**
 * Scans one image layer (a tar archive, plain or compressed with gzip or zstd) for secrets.
 *
 * The compression is read from the first bytes, because a media type can be wrong; `mediaType`
 * only appears in messages. Memory stays constant: the layer is decompressed and parsed as it
 * streams, and only JSON files up to 1 MiB are held whole. A layer that passes `limits`, is not
 * a tar archive, or is corrupt is returned with `unscannable` set and the findings made up to that
 * point. Errors from `input` itself are thrown, and so is `signal.reason` when the signal aborts.
 * When the scan stops before the end of `input`, `input` is destroyed.
 */
export async function scanLayer(
  input: NodeJS.ReadableStream | Readable,
  mediaType: string,
  layerDigest: string,
  limits: ScanLimits = DEFAULT_SCAN_LIMITS,
  signal?: AbortSignal,
  options: PreviewOptions = {},
): Promise<LayerScanResult> {
  signal?.throwIfAborted();
  const collector = new FindingCollector(layerDigest, options.previewKey);
  const result: LayerScanResult = { findings: collector.findings, entries: 0, expandedBytes: 0 };
  if (mediaType.endsWith('+encrypted')) {
    destroyInput(input);
    return { ...result, unscannable: `layer is encrypted (media type ${mediaType})` };
  }

  let inputError: unknown;
  const source = (async function* readInput(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of input as AsyncIterable<Buffer | string>) yield typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    } catch (error) {
      inputError = error;
      throw error;
    }
  })();

  const head = await readHead(source);
  if (typeof head === 'string') {
    destroyInput(input);
    return { ...result, unscannable: `${head} (media type ${mediaType})` };
  }

  const decoded = decode(head.compression, head.chunks, source);
  const extract = tar.extract();
  const stop: StopState = { reason: '', entry: null };
  const onAbort = (): void => {
    const reason = signal!.reason instanceof Error ? signal!.reason : new Error('scan aborted');
    // Destroying the parser does not end the entry being read, so both are destroyed.
    stop.entry?.destroy(reason);
    extract.destroy(reason);
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  const feeding = feedExtract(decoded, extract, result, limits, stop);
  try {
    await readEntries(extract, collector, result, limits, stop);
    await feeding;
  } catch (error) {
    await feeding.catch(() => undefined);
    if (!stop.reason) stop.reason = describeFailure(head.compression, error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (signal?.aborted) {
    destroyInput(input);
    throw signal.reason;
  }
  if (inputError !== undefined) throw inputError;

  if (stop.reason) {
    destroyInput(input);
    result.unscannable = stop.reason;
  }
  return result;
}

function destroyInput(input: NodeJS.ReadableStream | Readable): void {
  if ('destroy' in input && typeof input.destroy === 'function') input.destroy();
}

/** Reads the first bytes and picks the decompressor from their magic number; returns a reason string when the layer cannot be scanned. */
async function readHead(source: AsyncGenerator<Buffer>): Promise<{ compression: Compression; chunks: Buffer[] } | string> {
  const chunks: Buffer[] = [];
  let length = 0;
  while (length < 6) {
    const next = await source.next();
    if (next.done) break;
    chunks.push(next.value);
    length += next.value.length;
  }
  const start = Buffer.concat(chunks).subarray(0, 6);

  if (start[0] === 0x1f && start[1] === 0x8b) return { compression: 'gzip', chunks };
  if (start.readUInt32LE(0) === 0xfd2fb528) return { compression: 'zstd', chunks };
  for (const [name, magic] of UNSUPPORTED_MAGIC) {
    if (start.subarray(0, magic.length).equals(magic)) return `layer is compressed with ${name}, which layers may not use`;
  }
  return { compression: 'none', chunks };
}

function decode(compression: Compression, head: Buffer[], rest: AsyncGenerator<Buffer>): AsyncIterable<Buffer> {
  const all = (async function* (): AsyncGenerator<Buffer> {
    yield* head;
    yield* rest;
  })();
  if (compression === 'zstd') return decompressZstd(all);
  if (compression === 'gzip') return pipeline(Readable.from(all, { objectMode: false }), createGunzip(), () => undefined);
  return all;
}

/** Writes the decompressed stream into the tar parser, counting bytes and stopping at the limit. */
async function feedExtract(
  decoded: AsyncIterable<Buffer>,
  extract: tar.Extract,
  result: LayerScanResult,
  limits: ScanLimits,
  stop: StopState,
): Promise<void> {
  let bytesSinceYield = 0;
  try {
    for await (const chunk of decoded) {
      if (extract.destroyed) return;
      result.expandedBytes += chunk.length;
      bytesSinceYield += chunk.length;
      if (bytesSinceYield >= YIELD_EVERY_BYTES) {
        bytesSinceYield = 0;
        await setImmediate();
        if (extract.destroyed) return;
      }
      if (result.expandedBytes > limits.maxExpandedBytes) {
        stop.reason = `layer expands past ${formatBytes(limits.maxExpandedBytes)}`;
        const error = new LimitReached(stop.reason);
        stop.entry?.destroy(error);
        extract.destroy(error);
        return;
      }
      if (!extract.write(chunk)) await drained(extract);
    }
    extract.end(undefined);
  } catch (error) {
    extract.destroy(error instanceof Error ? error : new Error(String(error)));
    throw error;
  }
}

function drained(extract: tar.Extract): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      extract.off('drain', done);
      extract.off('close', done);
      resolve();
    };
    extract.on('drain', done);
    extract.on('close', done);
  });
}

async function readEntries(
  extract: tar.Extract,
  collector: FindingCollector,
  result: LayerScanResult,
  limits: ScanLimits,
  stop: StopState,
): Promise<void> {
  for await (const entry of extract) {
    stop.entry = entry;
    result.entries++;
    if (result.entries > limits.maxEntries) {
      stop.reason = `layer has more than ${limits.maxEntries} entries`;
      extract.destroy(new LimitReached(stop.reason));
      return;
    }

    const path = entry.header.name.replace(/^(?:\.\/|\/)+/, '');
    const base = path.slice(path.lastIndexOf('/') + 1);
    const regular = entry.header.type === 'file' || entry.header.type === 'contiguous-file';
    // Whiteouts ('.wh.<name>', '.wh..wh..opq') mark deletions in the layers below and carry no content.
    if (!regular || base.startsWith('.wh.')) {
      for await (const _ of entry) void _; // drained, as the parser needs every entry read to its end
      continue;
    }
    await scanFile(entry, path, entry.header.size ?? 0, collector, result, limits);
  }
}

/** Scans one regular file as it streams: text line by line, PKCS#12 by structure, other binary files skipped. */
async function scanFile(
  entry: AsyncIterable<unknown>,
  path: string,
  size: number,
  collector: FindingCollector,
  result: LayerScanResult,
  limits: ScanLimits,
): Promise<void> {
  const file = new FileScan(path, size, collector);
  let scanned = 0;
  for await (const item of entry) {
    const data = item as Buffer;
    if (file.skipped || scanned >= limits.maxFileBytes) continue;
    const chunk = scanned + data.length > limits.maxFileBytes ? data.subarray(0, limits.maxFileBytes - scanned) : data;
    scanned += chunk.length;
    file.write(chunk);
  }
  file.end();
  if (size > limits.maxFileBytes) result.truncatedFiles = (result.truncatedFiles ?? 0) + 1;
}

/**
 * Reads the byte order mark of UTF-16 text: FF FE for little endian, FE FF for big endian. UTF-16
 * text has a NUL in every other byte of ASCII, so without the mark it would be taken as binary.
 */
function utf16Encoding(start: Buffer): 'utf-16le' | 'utf-16be' | null {
  if (start[0] === 0xff && start[1] === 0xfe) return 'utf-16le';
  if (start[0] === 0xfe && start[1] === 0xff) return 'utf-16be';
  return null;
}

/** The state of one file's scan: undecided until its first 8 KiB are read, then text, PKCS#12 or skipped. */
class FileScan {
  skipped = false;
  private head: Buffer[] | null = [];
  private headLength = 0;
  /** Decoder from UTF-16 to the UTF-8 that the text scanner reads, or null for other files. It drops the byte order mark. */
  private utf16: TextDecoder | null = null;
  private text: TextScanner | null = null;
  private pkcs12: Pkcs12Reader | null = null;
  private json: Buffer[] | null = null;
  private readonly namedAsKeyStore: boolean;
  private readonly keepJson: boolean;

  constructor(
    private readonly path: string,
    size: number,
    private readonly collector: FindingCollector,
  ) {
    const base = path.slice(path.lastIndexOf('/') + 1).toLowerCase();
    this.namedAsKeyStore = base.endsWith('.p12') || base.endsWith('.pfx');
    this.keepJson = base.endsWith('.json') && size <= MAX_JSON_BYTES;
  }

  write(chunk: Buffer): void {
    if (this.head === null) {
      this.feed(chunk);
      return;
    }
    this.head.push(chunk);
    this.headLength += chunk.length;
    if (this.headLength >= BINARY_SNIFF_BYTES) this.decide();
  }

  end(): void {
    if (this.head !== null) this.decide();
    if (this.utf16 !== null) this.feed(Buffer.alloc(0), true);
    this.text?.end();
    this.pkcs12?.end(this.collector, this.path);
    if (this.json !== null) detectJsonFile(Buffer.concat(this.json).toString('utf8'), this.path, this.collector);
  }

  private decide(): void {
    const start = this.head!.length === 1 ? this.head![0]! : Buffer.concat(this.head!);
    this.head = null;
    const sample = start.subarray(0, BINARY_SNIFF_BYTES);
    const pfx = looksLikePfx(sample);
    const encoding = utf16Encoding(sample);
    if (pfx || this.namedAsKeyStore) {
      this.pkcs12 = new Pkcs12Reader(this.namedAsKeyStore, pfx);
    } else if (encoding !== null && !new TextDecoder(encoding).decode(sample.subarray(0, sample.length & ~1)).includes('\0')) {
      this.utf16 = new TextDecoder(encoding);
      this.text = new TextScanner(this.collector, this.path, classifyPath(this.path));
      if (this.keepJson) this.json = [];
    } else if (sample.indexOf(0) >= 0) {
      this.skipped = true;
      return;
    } else {
      this.text = new TextScanner(this.collector, this.path, classifyPath(this.path));
      if (this.keepJson) this.json = [];
    }
    this.feed(start);
  }

  private feed(raw: Buffer, last = false): void {
    const chunk = this.utf16 === null ? raw : Buffer.from(this.utf16.decode(raw, { stream: !last }), 'utf8');
    if (this.text !== null) this.text.write(chunk);
    else this.pkcs12?.write(chunk);
    this.json?.push(chunk);
  }
}

function describeFailure(compression: Compression, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/tar/i.test(message) || compression === 'none') return `layer is not a valid tar archive: ${message}`;
  return `layer is not valid ${compression} data: ${message}`;
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1 && value % 1024 === 0) {
    value /= 1024;
    unit++;
  }
  return `${value} ${units[unit]}`;
}
