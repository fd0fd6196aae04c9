import { Decompress } from 'fzstd';

/**
 * Largest zstd window accepted: 128 MiB, the default limit of the reference decoder
 * (ZSTD_WINDOWLOG_LIMIT_DEFAULT = 27 in zstd 1.5). fzstd 0.1 allocates the whole window when it
 * reads a frame header, so a header that claims a larger one is rejected before it reaches fzstd.
 */
export const MAX_ZSTD_WINDOW_BYTES = 128 * 1024 * 1024;

const ZSTD_MAGIC = 0xfd2fb528;
const FRAME_CONTENT_SIZE_BYTES = [0, 2, 4, 8] as const;
const DICTIONARY_ID_BYTES = [0, 1, 2, 4] as const;

/** Raised for zstd input that is malformed or needs more memory than allowed. */
export class ZstdFormatError extends Error {
  override readonly name = 'ZstdFormatError';
}

type Phase = 'magic' | 'skippable-size' | 'descriptor' | 'header' | 'block-header' | 'block-body' | 'checksum' | 'skippable-body';

/**
 * Walks zstd frames and block headers (RFC 8878) to check each frame's window size and to find
 * block boundaries, without decoding. It copies at most a frame header (14 bytes).
 */
class FrameWalker {
  private phase: Phase = 'magic';
  private need = 4;
  private readonly field = Buffer.alloc(16);
  private fieldLength = 0;
  private skipBytes = 0;
  private descriptor = 0;
  private lastBlock = false;

  constructor(private readonly maxWindowBytes: number) {}

  /** Appends to `ends` the offsets in `chunk` right after each complete block. */
  walk(chunk: Buffer, ends: number[]): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.phase === 'block-body' || this.phase === 'checksum' || this.phase === 'skippable-body') {
        const take = Math.min(this.skipBytes, chunk.length - i);
        i += take;
        this.skipBytes -= take;
        if (this.skipBytes > 0) return;
        if (this.phase === 'block-body') ends.push(i);
        this.afterSkip();
        continue;
      }

      const take = Math.min(this.need - this.fieldLength, chunk.length - i);
      chunk.copy(this.field, this.fieldLength, i, i + take);
      this.fieldLength += take;
      i += take;
      if (this.fieldLength < this.need) return;
      this.fieldLength = 0;
      this.completeField();
    }
  }

  /** Reports whether the input so far ends on a frame boundary. */
  get atFrameBoundary(): boolean {
    return this.phase === 'magic' && this.fieldLength === 0;
  }

  private completeField(): void {
    const field = this.field;
    switch (this.phase) {
      case 'magic': {
        const magic = field.readUInt32LE(0);
        if (magic === ZSTD_MAGIC) return this.expect('descriptor', 1);
        if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) return this.expect('skippable-size', 4);
        throw new ZstdFormatError('invalid zstd data: unknown frame magic number');
      }
      case 'skippable-size':
        return this.startSkip('skippable-body', field.readUInt32LE(0));
      case 'descriptor': {
        this.descriptor = field[0]!;
        if (this.descriptor & 0x08) throw new ZstdFormatError('invalid zstd data: reserved frame header bit is set');
        const singleSegment = (this.descriptor >> 5) & 1;
        return this.expect('header', (singleSegment ? 0 : 1) + DICTIONARY_ID_BYTES[this.descriptor & 3]! + this.contentSizeBytes());
      }
      case 'header':
        this.checkWindow();
        return this.expect('block-header', 3);
      case 'block-header': {
        const header = field[0]! | (field[1]! << 8) | (field[2]! << 16);
        this.lastBlock = (header & 1) === 1;
        const type = (header >> 1) & 3;
        if (type === 3) throw new ZstdFormatError('invalid zstd data: reserved block type');
        // An RLE block (type 1) stores one byte whatever its decoded size.
        return this.startSkip('block-body', type === 1 ? 1 : header >>> 3);
      }
      default:
        return;
    }
  }

  private contentSizeBytes(): number {
    const flag = this.descriptor >> 6;
    return flag === 0 ? (this.descriptor >> 5) & 1 : FRAME_CONTENT_SIZE_BYTES[flag]!;
  }

  private checkWindow(): void {
    let windowBytes: number;
    if ((this.descriptor >> 5) & 1) {
      // Single-segment frames have no window descriptor: the window is the frame content size.
      const offset = DICTIONARY_ID_BYTES[this.descriptor & 3]!;
      windowBytes = 0;
      for (let b = this.contentSizeBytes() - 1; b >= 0; b--) windowBytes = windowBytes * 256 + this.field[offset + b]!;
      if (this.descriptor >> 6 === 1) windowBytes += 256;
    } else {
      const base = 2 ** (10 + (this.field[0]! >> 3));
      windowBytes = base + (base / 8) * (this.field[0]! & 7);
    }
    if (windowBytes > this.maxWindowBytes) {
      throw new ZstdFormatError(
        `zstd frame needs a ${Math.ceil(windowBytes / 1048576)} MiB window, more than the ${Math.floor(this.maxWindowBytes / 1048576)} MiB allowed`,
      );
    }
  }

  private afterSkip(): void {
    if (this.phase === 'block-body' && !this.lastBlock) return this.expect('block-header', 3);
    if (this.phase === 'block-body' && this.descriptor & 0x04) return this.startSkip('checksum', 4);
    this.expect('magic', 4);
  }

  private expect(phase: Phase, bytes: number): void {
    this.phase = phase;
    this.need = bytes;
  }

  private startSkip(phase: Phase, bytes: number): void {
    this.phase = phase;
    this.skipBytes = bytes;
    if (bytes === 0) {
      // An empty block still ends a block; the caller splits there.
      this.afterSkip();
    }
  }
}

/**
 * Decompresses a zstd stream with fzstd in constant memory. The input is passed to fzstd one
 * block at a time, and each decoded block (at most 128 KiB) is yielded before the next is decoded.
 * So a highly compressed stream cannot expand in memory ahead of the consumer.
 */
export async function* decompressZstd(source: AsyncIterable<Buffer>, maxWindowBytes = MAX_ZSTD_WINDOW_BYTES): AsyncGenerator<Buffer> {
  const walker = new FrameWalker(maxWindowBytes);
  const decoded: Buffer[] = [];
  // fzstd passes views of its window buffer, which the next block overwrites, so each one is copied.
  const decoder = new Decompress((data) => {
    if (data.length > 0) decoded.push(Buffer.from(data));
  });
  const ends: number[] = [];

  for await (const chunk of source) {
    ends.length = 0;
    walker.walk(chunk, ends);
    let start = 0;
    for (const end of ends) {
      if (end > start) decoder.push(chunk.subarray(start, end));
      start = end;
      while (decoded.length > 0) yield decoded.shift()!;
    }
    if (start < chunk.length) decoder.push(chunk.subarray(start));
    while (decoded.length > 0) yield decoded.shift()!;
  }

  if (!walker.atFrameBoundary) throw new ZstdFormatError('invalid zstd data: unexpected end of input');
  decoder.push(new Uint8Array(0), true);
  while (decoded.length > 0) yield decoded.shift()!;
}
