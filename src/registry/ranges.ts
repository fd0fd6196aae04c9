import { RegistryError } from '../errors.js';
import type { ByteRange } from '../storage/blob-store.js';

/**
 * Parses a chunk's Content-Range. The OCI form is `<start>-<end>`; the RFC 9110
 * form `bytes <start>-<end>/<total or *>` is accepted too. Returns null when
 * the header is absent; throws RANGE_INVALID when it is malformed.
 */
export function parseContentRange(header: string | undefined): ByteRange | null {
  if (header === undefined || header === '') return null;
  const match = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/.exec(header.trim());
  if (!match) {
    throw new RegistryError('RANGE_INVALID', 'invalid Content-Range: expected <start>-<end> with inclusive byte offsets', { contentRange: header.slice(0, 100) });
  }
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) throw new RegistryError('RANGE_INVALID', 'invalid Content-Range: end is before start', { contentRange: header.slice(0, 100) });
  return { start, end };
}

/** Result of reading a Range request header against an object's size. */
export type RangeRequest = { kind: 'none' } | { kind: 'range'; range: ByteRange } | { kind: 'unsatisfiable' };

/**
 * Interprets a `Range: bytes=...` header for an object of `size` bytes.
 * Single ranges are honoured (`a-b`, `a-`, `-suffix`). A header with several
 * ranges or another unit is ignored, which RFC 9110 allows, so the whole
 * object is sent.
 */
export function parseRangeHeader(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'none' };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return { kind: 'none' };

  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return { kind: 'unsatisfiable' };
  return { kind: 'range', range: { start, end } };
}

/** Formats the `Range` header of upload responses: the bytes received so far, inclusive. */
export function uploadRangeHeader(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}
