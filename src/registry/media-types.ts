/** Manifest media types the registry parses for references. */
export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

/** Media types whose `manifests` array lists child manifests. */
export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);

/** Media types whose `config` and `layers` reference blobs. */
export const IMAGE_MEDIA_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);

/** Docker schema 1 manifests, which are deprecated and not accepted. */
export const SCHEMA1_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

/**
 * Returns whether a string is a syntactically valid media type: RFC 6838
 * type/subtype, with parameters allowed but not parsed. Control characters
 * are invalid anywhere, parameters included.
 */
export function isValidMediaType(value: string): boolean {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return false;
  return /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/.test(value.split(';')[0]?.trim() ?? '');
}

/** Returns the media type of a Content-Type header without parameters, lowercased. */
export function baseMediaType(contentType: string | undefined): string | null {
  if (!contentType) return null;
  const base = contentType.split(';')[0]?.trim().toLowerCase();
  return base ? base : null;
}
