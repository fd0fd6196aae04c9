import { RegistryError } from '../errors.js';

/** Repository name grammar of the OCI Distribution Specification: lowercase path components separated by '/'. */
const NAME_PATTERN = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;

/** Maximum repository name length, in characters. Docker clients reject longer names too. */
export const MAX_NAME_LENGTH = 255;

const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

const DIGEST_PATTERN = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Digest algorithms Portcullis can verify, with the length of their lowercase hex encoding. */
export const SUPPORTED_DIGEST_ALGORITHMS = { sha256: 64, sha512: 128 } as const;

export type DigestAlgorithm = keyof typeof SUPPORTED_DIGEST_ALGORITHMS;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  encoded: string;
  /** The digest as `algorithm:encoded`. */
  value: string;
}

/** Returns whether a string is a valid repository name. */
export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

/** Throws NAME_INVALID unless the repository name follows the grammar. */
export function validateName(name: string): string {
  if (isValidName(name)) return name;
  throw new RegistryError(
    'NAME_INVALID',
    'invalid repository name: use lowercase letters, digits and the separators ".", "_", "__", "-" between them, with "/" between path components, at most 255 characters',
    { name: name.slice(0, MAX_NAME_LENGTH + 1) },
  );
}

/** Returns whether a string is a valid tag. */
export function isValidTag(tag: string): boolean {
  return TAG_PATTERN.test(tag);
}

/** Returns whether a string has the general `algorithm:encoded` digest form, supported or not. */
export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

/**
 * Parses a digest and checks that its algorithm is supported and its encoded
 * part has the algorithm's length in lowercase hex. Throws DIGEST_INVALID.
 */
export function parseDigest(digest: string): ParsedDigest {
  const match = DIGEST_PATTERN.exec(digest);
  if (!match) {
    throw new RegistryError('DIGEST_INVALID', 'invalid digest: expected algorithm:hex, such as sha256:<64 hex digits>', { digest: digest.slice(0, 200) });
  }
  const algorithm = match[1] as string;
  const encoded = match[2] as string;
  if (!(algorithm in SUPPORTED_DIGEST_ALGORITHMS)) {
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm "${algorithm}": use sha256 or sha512`, { digest: digest.slice(0, 200) });
  }
  const expectedLength = SUPPORTED_DIGEST_ALGORITHMS[algorithm as DigestAlgorithm];
  if (encoded.length !== expectedLength || !/^[a-f0-9]+$/.test(encoded)) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${algorithm} digest: expected ${expectedLength} lowercase hex digits`, { digest: digest.slice(0, 200) });
  }
  return { algorithm: algorithm as DigestAlgorithm, encoded, value: digest };
}

/** A manifest reference from a URL: either a tag or a digest. */
export type ManifestReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: ParsedDigest };

/**
 * Parses the `<reference>` of `/v2/<name>/manifests/<reference>`. A value with
 * a colon is a digest and must be a valid one (DIGEST_INVALID otherwise);
 * anything else must be a valid tag (TAG_INVALID otherwise).
 */
export function parseManifestReference(reference: string): ManifestReference {
  if (looksLikeDigest(reference)) return { kind: 'digest', digest: parseDigest(reference) };
  if (isValidTag(reference)) return { kind: 'tag', tag: reference };
  throw new RegistryError('TAG_INVALID', 'invalid tag: use up to 128 characters from [a-zA-Z0-9_.-], not starting with "." or "-"', { tag: reference.slice(0, 200) });
}
