/**
 * Helper verbs for the /v2 HTTP tests: push blobs, drive upload sessions, put
 * and get manifests, and build small manifests, indexes and artifacts from
 * pushed blobs. Every request goes through supertest to a test server's URL.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import request from 'supertest';
import type { Response } from 'supertest';
import type TestAgent from 'supertest/lib/agent.js';

/** Digest algorithms that the registry verifies. */
export type DigestAlgorithm = 'sha256' | 'sha512';

/** Media types that the builders use. */
export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

/** A blob's bytes with its descriptor. */
export interface BlobContent {
  content: Buffer;
  descriptor: Descriptor;
}

/** Manifest bytes exactly as they are pushed, with their digest and media type. */
export interface ManifestDocument {
  mediaType: string;
  body: Buffer;
  digest: string;
  size: number;
  /** Descriptor of this manifest, for an index or a subject field. */
  descriptor: Descriptor;
}

/** An OCI error body as the tests read it. */
export interface OciErrorBody {
  errors: Array<{ code: string; message: string; detail: unknown }>;
}

/** Returns `algorithm:hex` of the bytes. */
export function digestOf(content: Buffer | string, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(content).digest('hex')}`;
}

/** Returns a repository name that no other test uses, under `prefix`. */
export function uniqueRepository(prefix: string): string {
  return `${prefix}/${randomUUID().slice(0, 8)}`;
}

/** Returns bytes that no other test pushes, starting with `label`. */
export function uniqueContent(label: string): Buffer {
  return Buffer.from(`${label}-${randomUUID()}`);
}

/** Wraps bytes as a blob with a descriptor of the given media type. */
export function blobOf(content: Buffer | string, mediaType: string = MEDIA.ociLayer): BlobContent {
  const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content);
  return { content: bytes, descriptor: { mediaType, digest: digestOf(bytes), size: bytes.length } };
}

/** Returns the two-byte `{}` blob that artifacts without a config use as their config. */
export function emptyConfigBlob(): BlobContent {
  return blobOf('{}', MEDIA.ociEmpty);
}

/** Turns manifest bytes into a ManifestDocument; `text` is kept byte for byte. */
export function manifestFromText(text: string | Buffer, mediaType: string): ManifestDocument {
  const body = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const digest = digestOf(body);
  return { mediaType, body, digest, size: body.length, descriptor: { mediaType, digest, size: body.length } };
}

function manifestOf(document: Record<string, unknown>, mediaType: string): ManifestDocument {
  return manifestFromText(JSON.stringify(document), mediaType);
}

/** Optional fields of an OCI image manifest. */
export interface ImageManifestOptions {
  artifactType?: string;
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** Builds an OCI image manifest from a config and layers. */
export function ociImageManifest(config: Descriptor, layers: Descriptor[], options: ImageManifestOptions = {}): ManifestDocument {
  return manifestOf({ schemaVersion: 2, mediaType: MEDIA.ociManifest, ...(options.artifactType ? { artifactType: options.artifactType } : {}), config, layers, ...optionalFields(options) }, MEDIA.ociManifest);
}

/**
 * Builds an OCI artifact: an image manifest with an artifactType, the empty
 * config, and a subject. Push emptyConfigBlob() and the layers first.
 */
export function ociArtifactManifest(artifactType: string, subject: Descriptor, layers: Descriptor[], annotations?: Record<string, string>): ManifestDocument {
  return ociImageManifest(emptyConfigBlob().descriptor, layers, { artifactType, subject, ...(annotations ? { annotations } : {}) });
}

/** Builds an OCI image index over child manifests. */
export function ociIndex(manifests: Descriptor[], options: ImageManifestOptions = {}): ManifestDocument {
  return manifestOf({ schemaVersion: 2, mediaType: MEDIA.ociIndex, ...(options.artifactType ? { artifactType: options.artifactType } : {}), manifests, ...optionalFields(options) }, MEDIA.ociIndex);
}

/** Builds a Docker schema 2 image manifest. */
export function dockerManifest(config: Descriptor, layers: Descriptor[]): ManifestDocument {
  return manifestOf({ schemaVersion: 2, mediaType: MEDIA.dockerManifest, config, layers }, MEDIA.dockerManifest);
}

/** Builds a Docker schema 2 manifest list over child manifests. */
export function dockerManifestList(manifests: Descriptor[]): ManifestDocument {
  return manifestOf({ schemaVersion: 2, mediaType: MEDIA.dockerManifestList, manifests }, MEDIA.dockerManifestList);
}

function optionalFields(options: ImageManifestOptions): Record<string, unknown> {
  return { ...(options.subject ? { subject: options.subject } : {}), ...(options.annotations ? { annotations: options.annotations } : {}) };
}

/** Returns the path and query of a Location header, which the server sends as an absolute URL. */
export function pathOf(location: string | undefined): string {
  assert.ok(location, 'response has no Location header');
  const url = new URL(location);
  return `${url.pathname}${url.search}`;
}

/** Returns the OCI error code of the first error in a response body. */
export function errorCodeOf(response: Response): string | undefined {
  return (response.body as Partial<OciErrorBody>).errors?.[0]?.code;
}

/** Asserts the status and the OCI error code of a response, one assertion each. */
export function assertOciError(response: Response, status: number, code: string): void {
  assert.equal(response.status, status, `expected status ${status}, got ${response.status}: ${response.text}`);
  assert.equal(errorCodeOf(response), code, `expected error code ${code}: ${response.text}`);
}

/**
 * Collects a response body as a Buffer, whatever its Content-Type. On Node
 * superagent hands a parser the IncomingMessage stream, although its types
 * call that argument a Response.
 */
function collectBytes(response: Response, callback: (error: Error | null, body: Buffer) => void): void {
  const stream = response as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => callback(null, Buffer.concat(chunks)));
  stream.on('error', (error: Error) => callback(error, Buffer.alloc(0)));
}

/** Sends a Buffer unchanged. superagent passes the result to the Node request, so a Buffer works, although its types ask for a string. */
const sendBytesUnchanged = ((body: Buffer) => body) as unknown as (body: unknown) => string;

/** A started upload session. */
export interface UploadStarted {
  response: Response;
  /** Path and query of the session's Location, ready for PATCH, PUT, GET and DELETE. */
  location: string;
  /** Session id from Docker-Upload-UUID. */
  id: string;
}

/** Registry client for one test server; each verb asserts only what it needs to go on. */
export class RegistryClient {
  /** Logs in with Basic credentials on every request, or sends none when `login` is null. */
  constructor(
    readonly baseUrl: string,
    readonly login: { username: string; password: string } | null,
  ) {}

  /** A supertest agent aimed at the server, for requests that the verbs do not cover. */
  get http(): TestAgent {
    const agent = request.agent(this.baseUrl);
    return this.login ? agent.auth(this.login.username, this.login.password) : agent;
  }

  /** GETs a path and returns the body as raw bytes in `response.body`. */
  async getBytes(path: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.http.get(path).set(headers).buffer(true).parse(collectBytes);
  }

  /** Pushes a whole blob with one POST ?digest= and asserts 201. */
  async pushBlob(repository: string, blob: BlobContent | Buffer | string, algorithm: DigestAlgorithm = 'sha256'): Promise<Descriptor> {
    const content = isBlobContent(blob) ? blob.content : Buffer.from(blob);
    const digest = digestOf(content, algorithm);
    const response = await this.http.post(`/v2/${repository}/blobs/uploads/?digest=${digest}`).set('Content-Type', 'application/octet-stream').send(content);
    assert.equal(response.status, 201, `pushing blob ${digest} failed: ${response.status} ${response.text}`);
    return isBlobContent(blob) ? blob.descriptor : { mediaType: MEDIA.ociLayer, digest, size: content.length };
  }

  /** Pushes several blobs and returns their descriptors. */
  async pushBlobs(repository: string, blobs: BlobContent[]): Promise<Descriptor[]> {
    const descriptors: Descriptor[] = [];
    for (const blob of blobs) descriptors.push(await this.pushBlob(repository, blob));
    return descriptors;
  }

  /** Opens an upload session with an empty POST and asserts 202. */
  async startUpload(repository: string): Promise<UploadStarted> {
    const response = await this.http.post(`/v2/${repository}/blobs/uploads/`);
    assert.equal(response.status, 202, `starting an upload failed: ${response.status} ${response.text}`);
    return { response, location: pathOf(response.headers.location), id: String(response.headers['docker-upload-uuid']) };
  }

  /** PATCHes a chunk to a session; `contentRange` is sent only when given. */
  async patchChunk(location: string, chunk: Buffer | string, contentRange?: string): Promise<Response> {
    const patch = this.http.patch(location).set('Content-Type', 'application/octet-stream');
    if (contentRange !== undefined) patch.set('Content-Range', contentRange);
    return patch.send(Buffer.from(chunk));
  }

  /** PUTs ?digest= to close a session, with an optional last chunk. */
  async finishUpload(location: string, digest: string, lastChunk?: Buffer | string): Promise<Response> {
    const separator = location.includes('?') ? '&' : '?';
    const put = this.http.put(`${location}${separator}digest=${digest}`);
    if (lastChunk === undefined) return put;
    return put.set('Content-Type', 'application/octet-stream').send(Buffer.from(lastChunk));
  }

  /**
   * PUTs a manifest under a tag or digest with its media type as Content-Type.
   * The bytes go out unchanged: superagent would otherwise JSON-encode a
   * Buffer sent with a `+json` Content-Type.
   */
  async putManifest(repository: string, reference: string, manifest: Pick<ManifestDocument, 'body' | 'mediaType'>): Promise<Response> {
    return this.http
      .put(`/v2/${repository}/manifests/${reference}`)
      .set('Content-Type', manifest.mediaType)
      .serialize(sendBytesUnchanged)
      .send(manifest.body);
  }

  /** PUTs a manifest and asserts 201. */
  async pushManifest(repository: string, reference: string, manifest: ManifestDocument): Promise<ManifestDocument> {
    const response = await this.putManifest(repository, reference, manifest);
    assert.equal(response.status, 201, `pushing manifest ${manifest.digest} failed: ${response.status} ${response.text}`);
    return manifest;
  }

  /** Pushes a config and one layer of unique bytes, then an OCI image manifest over them. */
  async pushImage(repository: string, reference?: string, options: ImageManifestOptions = {}): Promise<ManifestDocument> {
    const config = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux', id: randomUUID() }), MEDIA.ociConfig);
    const layer = blobOf(uniqueContent('layer'));
    await this.pushBlobs(repository, [config, layer]);
    const manifest = ociImageManifest(config.descriptor, [layer.descriptor], options);
    return this.pushManifest(repository, reference ?? manifest.digest, manifest);
  }
}

function isBlobContent(value: BlobContent | Buffer | string): value is BlobContent {
  return typeof value === 'object' && !Buffer.isBuffer(value);
}
