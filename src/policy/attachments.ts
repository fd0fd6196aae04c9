/**
 * Rules for the attachments (signatures, SBOMs, attestations) that may be
 * pulled with the image they describe. A pullable subject makes
 * an attachment pullable only when every media type in it is on the
 * allowlist and it is small, so an image cannot be smuggled out as an
 * attachment of a certified one.
 */

/** Media types allowed in attachments when ATTACHMENT_MEDIA_TYPES is unset. */
export const DEFAULT_ATTACHMENT_MEDIA_TYPES: readonly string[] = [
  // cosign signatures: the simple-signing payload layer, and the artifactType of OCI 1.1 signatures.
  'application/vnd.dev.cosign.simplesigning.v1+json',
  'application/vnd.dev.cosign.artifact.sig.v1+json',
  // in-toto statements and their DSSE envelopes (cosign attestations).
  'application/vnd.in-toto+json',
  'application/vnd.dsse.envelope.v1+json',
  // SBOMs.
  'application/spdx+json',
  'text/spdx',
  'application/vnd.cyclonedx+json',
  'application/vnd.cyclonedx+xml',
  // Notary Project signatures: the artifactType and the JWS or COSE envelope layer.
  'application/vnd.cncf.notary.signature',
  'application/jose+json',
  'application/cose',
  // The empty config of OCI 1.1 artifacts.
  'application/vnd.oci.empty.v1+json',
  // The config of cosign's legacy signatures. It qualifies only with at least one allowlisted layer.
  'application/vnd.oci.image.config.v1+json',
];

/** Largest total size of an attachment (its manifest, config and layers) when ATTACHMENT_MAX_BYTES is unset: 16 MiB. */
export const DEFAULT_ATTACHMENT_MAX_BYTES = 16 * 1024 * 1024;

/** The image config type, which cosign puts in its signatures but every container image has too. */
const IMAGE_CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json';

/**
 * Returns whether a media type is an image filesystem layer: any tar layer
 * (`…tar`, `…tar+gzip`, `…tar+zstd`, `application/x-tar`) and the Docker
 * rootfs types. Such a layer never qualifies, even when the allowlist contains its type.
 */
export function isFilesystemLayerType(mediaType: string): boolean {
  const type = mediaType.toLowerCase();
  return /\btar\b/.test(type) || type.includes('.rootfs.');
}

/** The settings that decide which manifests qualify as attachments. */
export interface AttachmentRules {
  mediaTypes: ReadonlySet<string>;
  maxBytes: number;
}

/** Builds the rules from the configured list and limit. */
export function attachmentRules(mediaTypes: readonly string[], maxBytes: number): AttachmentRules {
  return { mediaTypes: new Set(mediaTypes.map((type) => type.toLowerCase())), maxBytes };
}

interface DescriptorFields {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
}

/** The parts of a stored image manifest that the rules look at. */
interface AttachmentDocument {
  artifactType?: unknown;
  config?: DescriptorFields;
  layers?: unknown;
  manifests?: unknown;
}

/** Returns the media type of a descriptor without parameters, lowercased, or null when it has none. */
function descriptorType(descriptor: DescriptorFields | undefined): string | null {
  if (typeof descriptor?.mediaType !== 'string') return null;
  return (descriptor.mediaType.split(';')[0] as string).trim().toLowerCase();
}

function descriptorSize(descriptor: DescriptorFields): number {
  return typeof descriptor.size === 'number' && Number.isFinite(descriptor.size) ? descriptor.size : Number.POSITIVE_INFINITY;
}

/**
 * Returns why a stored manifest does not qualify as an attachment, or null
 * when it does. It must be an image manifest, not an index. Its
 * artifactType (if any), config media type and every layer media type must
 * be on the allowlist, and none may be a filesystem layer. Its manifest,
 * config and layers must add up to at most `rules.maxBytes`.
 */
export function attachmentProblem(content: Buffer, rules: AttachmentRules): string | null {
  let document: AttachmentDocument;
  try {
    document = JSON.parse(content.toString('utf8')) as AttachmentDocument;
  } catch {
    return 'its manifest is not valid JSON';
  }
  if (document.manifests !== undefined || document.config === undefined || !Array.isArray(document.layers)) {
    return 'it is not an image manifest with a config and layers';
  }
  const layers = document.layers as DescriptorFields[];

  const types: Array<[string, string | null]> = [['config', descriptorType(document.config)], ...layers.map((layer): [string, string | null] => ['layer', descriptorType(layer)])];
  if (typeof document.artifactType === 'string') types.unshift(['artifactType', document.artifactType.toLowerCase()]);
  for (const [field, type] of types) {
    if (type === null) return `its ${field} has no media type`;
    if (isFilesystemLayerType(type)) return `its ${field} media type ${type} is an image filesystem layer`;
    if (!rules.mediaTypes.has(type)) return `its ${field} media type ${type} is not an allowed attachment type (ATTACHMENT_MEDIA_TYPES)`;
  }
  if (descriptorType(document.config) === IMAGE_CONFIG_TYPE && layers.length === 0) {
    return `it has the container image config ${IMAGE_CONFIG_TYPE} and no layer, so it is an empty image rather than a signature`;
  }

  const total = content.length + descriptorSize(document.config) + layers.reduce((sum, layer) => sum + descriptorSize(layer), 0);
  if (total > rules.maxBytes) return `its manifest, config and layers total ${total} bytes, more than the attachment limit of ${rules.maxBytes} (ATTACHMENT_MAX_BYTES)`;
  return null;
}

/** A layer of an attachment whose bytes the gate inspects. */
export interface AttachmentLayer {
  digest: string;
  size: number;
}

/** Returns the layers of a stored image manifest that have a digest and a size, or none when it is not one. */
export function attachmentLayers(content: Buffer): AttachmentLayer[] {
  let document: AttachmentDocument;
  try {
    document = JSON.parse(content.toString('utf8')) as AttachmentDocument;
  } catch {
    return [];
  }
  if (!Array.isArray(document.layers)) return [];

  return (document.layers as DescriptorFields[]).flatMap((layer) =>
    typeof layer.digest === 'string' && typeof layer.size === 'number' ? [{ digest: layer.digest, size: layer.size }] : [],
  );
}
