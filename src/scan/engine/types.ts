/** Severity of a finding, from most to least urgent. */
export type Severity = 'critical' | 'high' | 'medium' | 'low';

/** One secret found in an image config or layer. It never contains the secret itself. */
export interface Finding {
  /** Layer digest, or 'config' for the image config. */
  layer: string;
  /** File path inside the layer without a leading './', or the config field such as 'Env[3]'. */
  path: string | null;
  /** 1-based line within the file or field. */
  line: number | null;
  /** Stable detector id, such as 'aws-access-key' or 'private-key-openssh'. */
  detector: string;
  severity: Severity;
  /** Redacted form: at most 4 leading characters of the secret, '…', and the first 12 hex digits of its sha256. */
  preview: string;
  /** sha256 hex over detector, layer, path, line and the secret's sha256, so a rescan yields the same id. */
  fingerprint: string;
}

/** Bounds on the work one layer scan may do. */
/** Redaction settings of previews. */
export interface PreviewOptions {
  /** Key of the HMAC that replaces the plain sha256 in previews; keep it secret and the same on every replica. */
  previewKey?: Buffer;
}

export interface ScanLimits {
  /** Maximum bytes of the decompressed tar stream; past it the layer is reported unscannable. */
  maxExpandedBytes: number;
  /** Maximum tar entries (files, directories, links, whiteouts); past it the layer is reported unscannable. */
  maxEntries: number;
  /** Bytes scanned per file; the rest of a larger file is read past without scanning and counted in `truncatedFiles`. */
  maxFileBytes: number;
}

const GIB = 1024 * 1024 * 1024;

/**
 * Defaults sized for real images: the largest common layers (CUDA, ML runtimes) expand to a few GiB
 * and hold a few hundred thousand entries. Files are scanned in their first 64 MiB, which covers
 * every credential format; larger files are logs, dumps or data.
 */
export const DEFAULT_SCAN_LIMITS: ScanLimits = Object.freeze({
  maxExpandedBytes: 8 * GIB,
  maxEntries: 1_000_000,
  maxFileBytes: 64 * 1024 * 1024,
});

/** Result of scanning one layer. */
export interface LayerScanResult {
  findings: Finding[];
  /** Reason the layer could not be scanned to its end, such as 'layer expands past 8 GiB'. Findings up to that point are kept. */
  unscannable?: string;
  /** Tar entries read. */
  entries: number;
  /** Decompressed bytes read. */
  expandedBytes: number;
  /** Files larger than `maxFileBytes`, scanned only in their first `maxFileBytes` bytes. */
  truncatedFiles?: number;
}

/** Raised when scan input is not what the format requires, such as an image config that is not JSON. */
export class ScanInputError extends Error {
  override readonly name = 'ScanInputError';
}
