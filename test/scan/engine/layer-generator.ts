import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import tar from 'tar-stream';

const MIB = 1024 * 1024;
const POOL_BYTES = 4 * MIB;

/** Deterministic pseudo-random numbers (mulberry32), so generated layers are the same on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Source-code-like text: indented lines of identifiers, keywords, numbers and punctuation, which gzip shrinks about 3 to 4 times. */
function textPool(next: () => number): Buffer {
  const words = Array.from({ length: 3000 }, () => Math.floor(next() * 36 ** 6).toString(36));
  const keywords = ['const', 'return', 'if', 'for', 'function', 'import', 'export', 'class', 'def', 'self', 'null', 'true', '=', '==', '(', ')', '{', '}', '//', '#'];
  const lines: string[] = [];
  let size = 0;
  while (size < POOL_BYTES) {
    const indent = ' '.repeat(Math.floor(next() * 4) * 2);
    const count = 3 + Math.floor(next() * 9);
    const tokens: string[] = [];
    for (let i = 0; i < count; i++) {
      const r = next();
      if (r < 0.45) tokens.push(words[Math.floor(next() * words.length)]!);
      else if (r < 0.9) tokens.push(keywords[Math.floor(next() * keywords.length)]!);
      else tokens.push(String(Math.floor(next() * 100000)));
    }
    const line = `${indent}${tokens.join(' ')}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join(''), 'latin1');
}

/** Executable-like bytes: an ELF magic, random runs, zero padding and repeated tables, which gzip shrinks about 2 times. */
function binaryPool(next: () => number): Buffer {
  const pool = Buffer.alloc(POOL_BYTES);
  const noise = randomBytes(POOL_BYTES);
  let offset = 0;
  while (offset < POOL_BYTES) {
    const length = Math.min(POOL_BYTES - offset, 64 + Math.floor(next() * 2048));
    const kind = next();
    if (kind < 0.45) noise.copy(pool, offset, offset, offset + length);
    else if (kind < 0.7) pool.fill(0, offset, offset + length);
    else pool.fill(Math.floor(next() * 256), offset, offset + length);
    offset += length;
  }
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(pool, 0);
  return pool;
}

/** Options for generateLayer. */
export interface GeneratedLayerOptions {
  /** Total file content, in bytes. */
  bytes: number;
  /** Share of the content that is text, from 0 to 1. */
  textShare?: number;
  seed?: number;
}

/**
 * Streams a tar layer of about `bytes` of file content, generated as it is read: text files of
 * 1 KiB to 256 KiB and binary files of 16 KiB to 8 MiB, in the given proportion. Every 200th text
 * file ends with a fake AWS key pair, so the scan also exercises its detectors.
 */
export function generateLayer(options: GeneratedLayerOptions): Readable {
  const next = random(options.seed ?? 1);
  const text = textPool(next);
  const binary = binaryPool(next);
  const textShare = options.textShare ?? 0.4;
  const pack = tar.pack();

  void (async () => {
    let written = 0;
    let textBytes = 0;
    for (let index = 0; written < options.bytes; index++) {
      const asText = textBytes <= written * textShare;
      const size = asText ? 1024 + Math.floor(next() * 255 * 1024) : 16 * 1024 + Math.floor(next() * 8 * MIB);
      const pool = asText ? text : binary;
      const start = asText ? text.indexOf(10, Math.floor(next() * (POOL_BYTES - size))) + 1 : 0;
      let content = pool.subarray(start, start + Math.min(size, POOL_BYTES - start));
      if (asText && index % 200 === 0) {
        content = Buffer.concat([content, Buffer.from(`aws_access_key_id = AKIA${'QWERTYUIOPASDFGH'}\naws_secret_access_key = aZ9/${'k3Jd8sLq0Pz7Xc5Vb2Nm4Hg6Tf1Ry9Ue8Wi3Oa'.slice(0, 36)}\n`)]);
      }
      const name = asText ? `usr/share/app/src/module${index}.py` : `usr/lib/app/lib${index}.so`;
      await new Promise<void>((resolve, reject) => pack.entry({ name, size: content.length }, content, (error) => (error ? reject(error) : resolve())));
      written += content.length;
      if (asText) textBytes += content.length;
    }
    pack.finalize();
  })().catch((error: unknown) => pack.destroy(error as Error));

  return Readable.from(pack);
}
