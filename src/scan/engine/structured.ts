import { isSecretValue } from './detectors.js';
import type { FindingCollector } from './redaction.js';

/** JSON files up to this size are also parsed whole, for formats whose secret is found by structure. */
export const MAX_JSON_BYTES = 1024 * 1024;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Returns the 1-based line of the first occurrence of `needle` at or after `from`, or null when absent. */
function lineOf(text: string, needle: string, from = 0): number | null {
  const at = text.indexOf(needle, from);
  if (at < 0) return null;
  let line = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < at; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/**
 * Finds secrets by structure in a parsed JSON file: GCP service-account keys and Docker client
 * config credentials (`auths.<registry>.auth` and `identitytoken`). Text that is not JSON is ignored.
 */
export function detectJsonFile(text: string, path: string, collector: FindingCollector): void {
  let document: unknown;
  try {
    // JSON.parse rejects a byte order mark, which editors on Windows write at the start of UTF-8 files.
    document = JSON.parse(text.startsWith('\uFEFF') ? text.slice(1) : text);
  } catch {
    return;
  }
  if (!isObject(document)) return;

  const privateKey = document['private_key'];
  if (document['type'] === 'service_account' && typeof privateKey === 'string' && privateKey.includes('PRIVATE KEY-----')) {
    const line = lineOf(text, '"private_key"');
    // The escaped PEM on that line was already reported as a PKCS#8 key; the service account is the more specific finding.
    if (line !== null) collector.remove(path, line, ['private-key-pkcs8', 'private-key-rsa']);
    collector.add('gcp-service-account', path, line, privateKey);
  }

  const auths = document['auths'];
  if (!isObject(auths)) return;
  for (const [registry, entry] of Object.entries(auths)) {
    if (!isObject(entry)) continue;
    const registryAt = text.indexOf(JSON.stringify(registry));
    for (const field of ['auth', 'identitytoken'] as const) {
      const value = entry[field];
      if (typeof value !== 'string' || !isSecretValue(value)) continue;
      const line = lineOf(text, `"${field}"`, Math.max(0, registryAt));
      // The line scan reported the value as config-file-secret, because 'auth' is a secret name; the Docker finding is more specific.
      if (line !== null) collector.remove(path, line, ['config-file-secret']);
      collector.add('docker-config-auth', path, line, value);
    }
  }
}
