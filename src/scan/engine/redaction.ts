import { createHash, createHmac } from 'node:crypto';
import { SEVERITIES, type DetectorId } from './detectors.js';
import { isPublishedSecret } from './published-secrets.js';
import type { Finding } from './types.js';

/** The sha256 hex of a secret, computed once so that neither the preview nor the fingerprint needs the secret again. */
export interface SecretDigest {
  /** At most 4 leading characters of the secret, fewer for short secrets. */
  prefix: string;
  sha256: string;
}

/** Digests a secret string, keeping at most a quarter of it (and never more than 4 characters) as the preview prefix. */
export function digestSecret(secret: string): SecretDigest {
  const prefixLength = Math.min(4, Math.floor(secret.length / 4));
  return { prefix: secret.slice(0, prefixLength), sha256: createHash('sha256').update(secret, 'latin1').digest('hex') };
}

/** Collects findings for one layer or config, dropping a second report of the same secret on the same line. */
export class FindingCollector {
  readonly findings: Finding[] = [];
  /** Findings by path, line and secret digest, the key that makes a second report a duplicate. */
  private readonly seen = new Map<string, Finding>();

  /**
   * With a preview key, the hash in each preview is an HMAC of the secret's
   * sha256 under that key, so a reader of the preview cannot confirm a
   * guessed secret by hashing it. Without one it is the plain sha256.
   */
  constructor(
    readonly layer: string,
    private readonly previewKey?: Buffer,
  ) {}

  private previewHash(sha256: string): string {
    if (!this.previewKey) return `sha256:${sha256.slice(0, 12)}`;
    return `hmac:${createHmac('sha256', this.previewKey).update(sha256).digest('hex').slice(0, 12)}`;
  }

  add(detector: DetectorId, path: string | null, line: number | null, secret: string | SecretDigest): void {
    const digest = typeof secret === 'string' ? digestSecret(secret) : secret;
    if (isPublishedSecret(digest.sha256)) return;
    const key = `${path ?? ''}\0${line ?? ''}\0${digest.sha256}`;
    if (this.seen.has(key)) return;

    const fingerprint = createHash('sha256')
      .update([detector, this.layer, path ?? '', line === null ? '' : String(line), digest.sha256].join('\0'))
      .digest('hex');
    const finding: Finding = {
      layer: this.layer,
      path,
      line,
      detector,
      severity: SEVERITIES[detector],
      preview: `${digest.prefix}…(${this.previewHash(digest.sha256)})`,
      fingerprint,
    };
    this.seen.set(key, finding);
    this.findings.push(finding);
  }

  /**
   * Removes the findings of the given detectors on one line, when a more specific finding replaces
   * them. The same secret may then be added again on that line.
   */
  remove(path: string | null, line: number, detectors: readonly DetectorId[]): void {
    const removed = new Set<Finding>();
    for (let i = this.findings.length - 1; i >= 0; i--) {
      const finding = this.findings[i]!;
      if (finding.path === path && finding.line === line && (detectors as readonly string[]).includes(finding.detector)) {
        this.findings.splice(i, 1);
        removed.add(finding);
      }
    }
    if (removed.size === 0) return;
    for (const [key, finding] of this.seen) if (removed.has(finding)) this.seen.delete(key);
  }
}
