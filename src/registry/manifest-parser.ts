import { z } from 'zod';
import { RegistryError } from '../errors.js';
import { INDEX_MEDIA_TYPES, IMAGE_MEDIA_TYPES, MEDIA_TYPES, SCHEMA1_MEDIA_TYPES, baseMediaType, isValidMediaType } from './media-types.js';
import { parseDigest } from './reference.js';

/** A content descriptor as the OCI image specification defines it. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
}

/** Facts about a manifest that the registry needs to store and link it. */
export interface ParsedManifest {
  mediaType: string;
  /** Blobs that must be in the repository: the config and every layer that is not foreign. */
  blobs: Descriptor[];
  /** Child manifests of an index or manifest list. */
  children: Descriptor[];
  subject: Descriptor | null;
  /** The manifest's artifactType, or for an image manifest without one its config media type. */
  artifactType: string | null;
  annotations: Record<string, string> | null;
}

const descriptorSchema = z.object({
  mediaType: z.string().refine(isValidMediaType, 'is not a valid media type'),
  digest: z.string(),
  size: z.number().int('must be a whole number').nonnegative('must not be negative'),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  artifactType: z.string().optional(),
});

// PostgreSQL text and jsonb cannot store U+0000, so annotations that contain it are rejected.
const annotationsSchema = z
  .record(z.string(), z.string())
  .refine((annotations) => Object.entries(annotations).every(([key, value]) => !key.includes('\u0000') && !value.includes('\u0000')), 'must not contain the NUL character (U+0000)')
  .optional();

// The OCI image specification requires artifactType to be an RFC 6838 media type.
const artifactTypeSchema = z.string().refine(isValidMediaType, 'is not a valid media type').optional();

const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: artifactTypeSchema,
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: annotationsSchema,
});

const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: artifactTypeSchema,
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: annotationsSchema,
});

/** Layer media types whose bytes may live outside the registry, so they need not be uploaded. */
const NON_DISTRIBUTABLE_LAYER_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

/** Fields of manifests, indexes and descriptors (with their platform) in the OCI image specification and Docker schema 2. */
const MANIFEST_FIELDS: ReadonlyMap<string, string> = new Map(
  [
    'schemaVersion',
    'mediaType',
    'artifactType',
    'config',
    'layers',
    'manifests',
    'subject',
    'annotations',
    'digest',
    'size',
    'urls',
    'data',
    'platform',
    'architecture',
    'os',
    'os.version',
    'os.features',
    'variant',
    'features',
  ].map((field) => [field.toLowerCase(), field]),
);

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `manifest invalid: ${message}`, detail);
}

function checkDescriptorDigests(descriptors: Descriptor[], field: string): void {
  for (const [index, descriptor] of descriptors.entries()) {
    try {
      parseDigest(descriptor.digest);
    } catch {
      throw invalid(`${field}[${index}].digest is not a valid sha256 or sha512 digest`, { digest: descriptor.digest.slice(0, 200) });
    }
  }
}

/**
 * Rejects keys that clients written in Go would read differently. Go's
 * encoding/json matches object keys to struct fields ignoring case, so with
 * `layers` and `Layers` in one object a Go client may use another layer
 * list than the one this registry checked. Every object at any depth must
 * have keys that differ in more than case, and a key that names a manifest
 * or descriptor field ignoring case must spell it exactly. The keys of
 * `annotations` are exempt because Go decodes them into a map, which
 * compares keys exactly.
 */
function checkKeyCase(value: unknown, path: string): void {
  if (Array.isArray(value)) {
    value.forEach((item, index) => checkKeyCase(item, `${path}[${index}]`));
    return;
  }
  if (typeof value !== 'object' || value === null) return;

  const seen = new Map<string, string>();
  for (const [key, child] of Object.entries(value)) {
    const where = path === '' ? key : `${path}.${key}`;
    const folded = key.toLowerCase();
    const earlier = seen.get(folded);
    if (earlier !== undefined) throw invalid(`keys "${earlier}" and "${key}" differ only in case (at ${where}); Go clients treat them as the same field`);
    seen.set(folded, key);

    const field = MANIFEST_FIELDS.get(folded);
    if (field !== undefined && field !== key) throw invalid(`key "${key}" must be spelled "${field}" (at ${where})`);
    if (key !== 'annotations') checkKeyCase(child, where);
  }
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'does not match the schema';
  const where = issue.path.length > 0 ? issue.path.join('.') : 'document';
  return `${where}: ${issue.message}`;
}

/**
 * Parses and validates manifest bytes. The media type comes from the body's
 * `mediaType` field or, when the body has none, from the request's
 * Content-Type. When both are given they must agree. Throws MANIFEST_INVALID
 * with the first problem found.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let document: unknown;
  try {
    document = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('body is not valid JSON');
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw invalid('body must be a JSON object');
  checkKeyCase(document, '');

  const declared = (document as { mediaType?: unknown }).mediaType;
  if (declared !== undefined && typeof declared !== 'string') throw invalid('mediaType must be a string');
  const headerType = baseMediaType(contentType);
  const usableHeaderType = headerType === 'application/json' || headerType === 'application/octet-stream' ? null : headerType;
  if (declared !== undefined && usableHeaderType !== null && declared !== usableHeaderType) {
    throw invalid(`Content-Type ${usableHeaderType} does not match the manifest's mediaType ${declared}`);
  }

  const hasManifests = 'manifests' in document;
  const mediaType = declared ?? usableHeaderType ?? (hasManifests ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.ociManifest);
  if (SCHEMA1_MEDIA_TYPES.has(mediaType)) {
    throw invalid('Docker schema 1 manifests are not supported: push with schema 2 or OCI manifests');
  }

  if (INDEX_MEDIA_TYPES.has(mediaType)) {
    const parsed = indexSchema.safeParse(document);
    if (!parsed.success) throw invalid(firstIssue(parsed.error));
    const index = parsed.data;
    checkDescriptorDigests(index.manifests, 'manifests');
    if (index.subject) checkDescriptorDigests([index.subject], 'subject');
    return {
      mediaType,
      blobs: [],
      children: index.manifests,
      subject: index.subject ?? null,
      artifactType: index.artifactType ?? null,
      annotations: index.annotations ?? null,
    };
  }

  if (IMAGE_MEDIA_TYPES.has(mediaType)) {
    const parsed = imageManifestSchema.safeParse(document);
    if (!parsed.success) throw invalid(firstIssue(parsed.error));
    const manifest = parsed.data;
    if (mediaType === MEDIA_TYPES.dockerManifest && declared === undefined) {
      throw invalid('Docker schema 2 manifests must carry their mediaType field');
    }
    checkDescriptorDigests([manifest.config], 'config');
    checkDescriptorDigests(manifest.layers, 'layers');
    if (manifest.subject) checkDescriptorDigests([manifest.subject], 'subject');
    const distributable = manifest.layers.filter((layer) => !(NON_DISTRIBUTABLE_LAYER_TYPES.has(layer.mediaType) && (layer.urls?.length ?? 0) > 0));
    return {
      mediaType,
      blobs: [manifest.config, ...distributable],
      children: [],
      subject: manifest.subject ?? null,
      artifactType: manifest.artifactType ?? manifest.config.mediaType,
      annotations: manifest.annotations ?? null,
    };
  }

  throw invalid(`unsupported manifest media type ${mediaType}: use an OCI image manifest or index, or a Docker schema 2 manifest or manifest list`);
}
