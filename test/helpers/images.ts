/**
 * Builders for the images that the end-to-end tests push and pull with skopeo.
 *
 * Each builder writes its image once per process under one temporary
 * directory and caches the result. OCI images go into an OCI image layout
 * (`oci-layout`, `index.json`, `blobs/sha256/<hex>`). The Docker schema 2
 * image goes into a skopeo `dir:` directory, because skopeo 1.9.3 skips
 * `index.json` entries whose media type is not an OCI manifest or index.
 *
 * Layers are tarred by GNU tar with sorted names, a fixed mtime and numeric
 * owner 0, and gzipped by node:zlib, so digests repeat from run to run on a
 * machine with the same tar and Node.js zlib.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/** Media types used by the fixtures. */
export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Artifact type of the SBOM artifact fixture. */
export const SBOM_ARTIFACT_TYPE = 'application/vnd.example.sbom.v1+json';

/** Size of the large layer's only file, in bytes (40 MiB). */
export const LARGE_FILE_SIZE = 40 * 1024 * 1024;

/** Annotation that names a manifest inside an OCI image layout's `index.json`. */
const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** OCI platform of an image in an index. */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

/** OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** A directory that skopeo reads an image from: an OCI image layout (`oci:`) or a `dir:` image. */
export type ImageTransport = 'oci' | 'dir';

/** An image, index or artifact written to disk for skopeo to copy. */
export interface ImageFixture {
  /** Short name, also used as the repository name under `e2e/` in the tests. */
  name: string;
  transport: ImageTransport;
  /** Directory of the OCI image layout or of the `dir:` image. */
  path: string;
  /** Reference name of the top-level manifest inside an OCI image layout, or undefined for `dir`. */
  reference: string | undefined;
  /** skopeo image name of the fixture: `oci:<path>:<reference>` or `dir:<path>`. */
  imageName: string;
  /** Descriptor of the top-level manifest or index. */
  manifest: Descriptor;
  /** Exact bytes of the top-level manifest or index. */
  manifestBytes: Buffer;
  /** Manifests listed by the index, in index order. Empty for a single manifest. */
  children: Descriptor[];
  /** Config and layer descriptors of every manifest, in manifest order. */
  blobs: Descriptor[];
}

/** The SBOM artifact, with the image that its `subject` field points at. */
export interface ArtifactFixture extends ImageFixture {
  artifactType: string;
  subject: ImageFixture;
}

/** Directory that blobs are written to, in the file layout of its transport. */
interface ImageDirectory {
  transport: ImageTransport;
  path: string;
}

/** Manifest bytes and descriptors of an image whose config and layers are on disk. */
type ComposedImage = Pick<ImageFixture, 'manifest' | 'manifestBytes' | 'children' | 'blobs'>;

/** A layer blob together with the digest of its uncompressed tar. */
interface BuiltLayer {
  descriptor: Descriptor;
  diffId: string;
}

/** Fills a staging directory with the files of one layer. */
type PopulateLayer = (rootfs: string) => Promise<void>;

/** Platform, media types and layer contents of one image. */
interface ImageSpec {
  platform: Platform;
  layers: PopulateLayer[];
  manifestMediaType: string;
  configMediaType: string;
  layerMediaType: string;
}

let fixturesRoot: string | undefined;
const fixtureCache = new Map<string, Promise<ImageFixture>>();

/** Builds a one-layer OCI image with three small text files. */
export function buildSingleLayerImage(): Promise<ImageFixture> {
  return cached('single-layer', async (workDir) => {
    const layout = await createOciLayout(join(workDir, 'layout'));
    const image = await composeImage(layout, workDir, smallImageSpec());
    return finishOciFixture('single-layer', layout, image);
  });
}

/** Builds a three-layer OCI image whose middle layer contains a 40 MiB incompressible file. */
export function buildMultiLayerImage(): Promise<ImageFixture> {
  return cached('multi-layer', async (workDir) => {
    const layout = await createOciLayout(join(workDir, 'layout'));
    const image = await composeImage(layout, workDir, {
      platform: { architecture: 'amd64', os: 'linux' },
      manifestMediaType: MediaType.ociManifest,
      configMediaType: MediaType.ociConfig,
      layerMediaType: MediaType.ociLayerGzip,
      layers: [
        writeFiles({ 'etc/portcullis/base.conf': 'layer = 1\n' }),
        async (rootfs) => writePseudoRandomFile(join(rootfs, 'data/random.bin'), LARGE_FILE_SIZE, 'portcullis-e2e'),
        writeFiles({ 'etc/portcullis/top.conf': 'layer = 3\n', 'usr/share/doc/portcullis/README': 'multi-layer fixture\n' }),
      ],
    });
    return finishOciFixture('multi-layer', layout, image);
  });
}

/** Builds an OCI image index with one small image each for linux/amd64 and linux/arm64. */
export function buildMultiArchIndex(): Promise<ImageFixture> {
  return cached('multi-arch', async (workDir) => {
    const layout = await createOciLayout(join(workDir, 'layout'));
    const platforms: Platform[] = [
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux' },
    ];

    const children: Descriptor[] = [];
    const blobs: Descriptor[] = [];
    for (const platform of platforms) {
      const image = await composeImage(layout, workDir, {
        platform,
        manifestMediaType: MediaType.ociManifest,
        configMediaType: MediaType.ociConfig,
        layerMediaType: MediaType.ociLayerGzip,
        layers: [writeFiles({ 'etc/arch': `${platform.os}/${platform.architecture}\n` })],
      });
      await writeBlob(layout, image.manifestBytes, image.manifest.mediaType);
      children.push({ ...image.manifest, platform });
      blobs.push(...image.blobs);
    }

    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: children };
    const indexBytes = Buffer.from(JSON.stringify(index));
    const descriptor: Descriptor = { mediaType: MediaType.ociIndex, digest: sha256Digest(indexBytes), size: indexBytes.length };
    return finishOciFixture('multi-arch', layout, { manifest: descriptor, manifestBytes: indexBytes, children, blobs });
  });
}

/**
 * Builds the single-layer image's files as a Docker schema 2 image in a
 * skopeo `dir:` directory.
 *
 * The layer blob and the config bytes equal those of `buildSingleLayerImage`,
 * so only the manifest, with Docker media types, differs.
 */
export function buildDockerSchema2Image(): Promise<ImageFixture> {
  return cached('docker-schema2', async (workDir) => {
    const directory = await createDirImage(join(workDir, 'dir'));
    const image = await composeImage(directory, workDir, {
      ...smallImageSpec(),
      manifestMediaType: MediaType.dockerManifest,
      configMediaType: MediaType.dockerConfig,
      layerMediaType: MediaType.dockerLayerGzip,
    });

    await writeFile(join(directory.path, 'manifest.json'), image.manifestBytes);
    return {
      name: 'docker-schema2',
      transport: 'dir',
      path: directory.path,
      reference: undefined,
      imageName: `dir:${directory.path}`,
      ...image,
    };
  });
}

/**
 * Builds an SBOM artifact whose `subject` is the single-layer image's manifest.
 *
 * The artifact follows the OCI image spec 1.1 guidance for artifacts: it sets
 * `artifactType`, its config is the empty descriptor (`{}`), and its one layer
 * is the SBOM document. Only the artifact is in this layout, so push the
 * subject from its own fixture first.
 */
export function buildArtifactWithSubject(): Promise<ArtifactFixture> {
  return cached('sbom-artifact', async (workDir) => {
    const subject = await buildSingleLayerImage();
    const layout = await createOciLayout(join(workDir, 'layout'));

    const config = await writeBlob(layout, Buffer.from('{}'), MediaType.ociEmpty);
    const sbom = { spdxVersion: 'SPDX-2.3', name: 'portcullis-e2e-single-layer', packages: [] };
    const sbomDescriptor = await writeBlob(layout, Buffer.from(JSON.stringify(sbom)), SBOM_ARTIFACT_TYPE);
    const layer: Descriptor = { ...sbomDescriptor, annotations: { 'org.opencontainers.image.title': 'sbom.spdx.json' } };

    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: SBOM_ARTIFACT_TYPE,
      config,
      layers: [layer],
      subject: subject.manifest,
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const fixture = await finishOciFixture('sbom-artifact', layout, {
      manifest: { mediaType: MediaType.ociManifest, digest: sha256Digest(manifestBytes), size: manifestBytes.length, artifactType: SBOM_ARTIFACT_TYPE },
      manifestBytes,
      children: [],
      blobs: [config, layer],
    });
    return { ...fixture, artifactType: SBOM_ARTIFACT_TYPE, subject };
  });
}

/** Removes every fixture built by this process, so the next builder call builds again. */
export async function removeImageFixtures(): Promise<void> {
  const root = fixturesRoot;
  fixturesRoot = undefined;
  fixtureCache.clear();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
}

/** Creates a new empty directory under the fixtures root, for example as a copy destination. */
export async function createScratchDirectory(label: string): Promise<string> {
  return mkdtemp(join(await ensureFixturesRoot(), `${label}-`));
}

/** Returns the `sha256:` digest of `bytes`. */
export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Reads the descriptor that `index.json` of an OCI image layout lists under
 * `reference`. Throws when the layout has no such reference.
 */
export async function readLayoutDescriptor(layoutPath: string, reference: string): Promise<Descriptor> {
  const index = JSON.parse(await readFile(join(layoutPath, 'index.json'), 'utf8')) as { manifests?: Descriptor[] };
  const found = index.manifests?.find((entry) => entry.annotations?.[REF_NAME_ANNOTATION] === reference);
  if (found === undefined) throw new Error(`OCI layout ${layoutPath} has no manifest named ${reference}`);
  return found;
}

/** Reads a blob of an OCI image layout by digest. */
export async function readLayoutBlob(layoutPath: string, digest: string): Promise<Buffer> {
  return readFile(blobPath({ transport: 'oci', path: layoutPath }, digest));
}

/** Reads the manifest bytes of a skopeo `dir:` image. */
export async function readDirManifest(path: string): Promise<Buffer> {
  return readFile(join(path, 'manifest.json'));
}

function cached<T extends ImageFixture>(name: string, build: (workDir: string) => Promise<T>): Promise<T> {
  const existing = fixtureCache.get(name);
  if (existing !== undefined) return existing as Promise<T>;

  const created = (async () => {
    const workDir = join(await ensureFixturesRoot(), name);
    await mkdir(workDir, { recursive: true });
    return build(workDir);
  })();
  fixtureCache.set(name, created);
  // A failed build leaves the cache, so a later call builds again and reports its own error.
  created.catch(() => fixtureCache.delete(name));
  return created;
}

async function ensureFixturesRoot(): Promise<string> {
  if (fixturesRoot !== undefined) return fixturesRoot;

  const root = await mkdtemp(join(tmpdir(), 'portcullis-images-'));
  fixturesRoot = root;
  // The multi-layer image alone takes over 80 MiB, so the directory must not outlive the process.
  process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  return root;
}

function smallImageSpec(): ImageSpec {
  return {
    platform: { architecture: 'amd64', os: 'linux' },
    manifestMediaType: MediaType.ociManifest,
    configMediaType: MediaType.ociConfig,
    layerMediaType: MediaType.ociLayerGzip,
    layers: [
      writeFiles({
        'etc/portcullis/motd': 'Served by Portcullis.\n',
        'usr/share/portcullis/hello.txt': 'hello from the single-layer fixture\n',
        'usr/share/portcullis/numbers.txt': Array.from({ length: 64 }, (_, i) => `${i}\n`).join(''),
      }),
    ],
  };
}

function writeFiles(files: Record<string, string>): PopulateLayer {
  return async (rootfs) => {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(rootfs, path)), { recursive: true });
      await writeFile(join(rootfs, path), content);
    }
  };
}

async function createOciLayout(path: string): Promise<ImageDirectory> {
  await mkdir(join(path, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(path, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { transport: 'oci', path };
}

/** Creates a directory in the format of the skopeo 1.9.3 `dir:` transport, version 1.1. */
async function createDirImage(path: string): Promise<ImageDirectory> {
  await mkdir(path, { recursive: true });
  await writeFile(join(path, 'version'), 'Directory Transport Version: 1.1\n');
  return { transport: 'dir', path };
}

/**
 * Writes the layers and the config of one image and returns its manifest.
 * The manifest itself is not written, because its place depends on the caller.
 */
async function composeImage(directory: ImageDirectory, workDir: string, spec: ImageSpec): Promise<ComposedImage> {
  const layers: BuiltLayer[] = [];
  for (const populate of spec.layers) {
    layers.push(await writeLayer(directory, workDir, populate, spec.layerMediaType));
  }

  // A fixed `created` time and no history keep the config bytes stable.
  const config = {
    created: '1970-01-01T00:00:00Z',
    architecture: spec.platform.architecture,
    os: spec.platform.os,
    ...(spec.platform.variant === undefined ? {} : { variant: spec.platform.variant }),
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
  };
  const configDescriptor = await writeBlob(directory, Buffer.from(JSON.stringify(config)), spec.configMediaType);

  const manifest = {
    schemaVersion: 2,
    mediaType: spec.manifestMediaType,
    config: configDescriptor,
    layers: layers.map((layer) => layer.descriptor),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return {
    manifest: { mediaType: spec.manifestMediaType, digest: sha256Digest(manifestBytes), size: manifestBytes.length },
    manifestBytes,
    children: [],
    blobs: [configDescriptor, ...layers.map((layer) => layer.descriptor)],
  };
}

/**
 * Tars the files that `populate` writes, gzips the tar into a blob and returns
 * the blob descriptor and the tar's digest (the config's `diff_id`). Bytes
 * stream from tar through both hashes to disk, so a large layer never sits in
 * memory.
 */
async function writeLayer(directory: ImageDirectory, workDir: string, populate: PopulateLayer, mediaType: string): Promise<BuiltLayer> {
  const rootfs = await mkdtemp(join(workDir, 'rootfs-'));
  await populate(rootfs);

  const tarDigest = createHash('sha256');
  const blobDigest = createHash('sha256');
  const counter = { bytes: 0 };
  const temporaryPath = `${rootfs}.tar.gz`;

  const tar = spawnReproducibleTar(rootfs, (await readdir(rootfs)).sort());
  const tarStderr: Buffer[] = [];
  tar.stderr.on('data', (chunk: Buffer) => tarStderr.push(chunk));
  const tarExit = new Promise<number | null>((resolve, reject) => {
    tar.once('error', reject);
    tar.once('close', resolve);
  });

  await pipeline(
    tar.stdout,
    hashStream(tarDigest),
    createGzip({ level: 6 }),
    hashStream(blobDigest, counter),
    createWriteStream(temporaryPath),
  );
  const exitCode = await tarExit;
  if (exitCode !== 0) {
    throw new Error(`tar failed with exit code ${exitCode} on ${rootfs}: ${Buffer.concat(tarStderr).toString().trim()}`);
  }

  const digest = `sha256:${blobDigest.digest('hex')}`;
  await rename(temporaryPath, blobPath(directory, digest));
  await rm(rootfs, { recursive: true, force: true });
  return {
    descriptor: { mediaType, digest, size: counter.bytes },
    diffId: `sha256:${tarDigest.digest('hex')}`,
  };
}

/**
 * Starts GNU tar on the staging directory with the usual reproducible-build
 * options. `--sort=name` orders the entries below each listed name, and needs
 * GNU tar 1.28 or later. Listing the top-level names instead of `.` keeps
 * the entry names free of a `./` prefix.
 */
function spawnReproducibleTar(rootfs: string, topLevelNames: string[]) {
  const args = [
    '--create',
    '--file=-',
    '--format=ustar',
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mode=u=rwX,go=rX',
    `--directory=${rootfs}`,
    '--',
    ...topLevelNames,
  ];
  return spawn('tar', args, { env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function hashStream(hash: Hash, counter?: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      if (counter !== undefined) counter.bytes += chunk.length;
      callback(null, chunk);
    },
  });
}

/**
 * Writes `size` bytes of the AES-256-CTR keystream derived from `seed`. The
 * bytes do not compress, and the same seed always gives the same file.
 */
async function writePseudoRandomFile(path: string, size: number, seed: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const chunkSize = 1024 * 1024;
  const zeros = Buffer.alloc(chunkSize);

  async function* keystream() {
    for (let written = 0; written < size; written += chunkSize) {
      yield cipher.update(zeros.subarray(0, Math.min(chunkSize, size - written)));
    }
  }

  await pipeline(Readable.from(keystream()), createWriteStream(path));
}

async function writeBlob(directory: ImageDirectory, bytes: Buffer, mediaType: string): Promise<Descriptor> {
  const digest = sha256Digest(bytes);
  await writeFile(blobPath(directory, digest), bytes);
  return { mediaType, digest, size: bytes.length };
}

/** Returns where a blob lives: `blobs/<algorithm>/<hex>` in an OCI image layout, `<hex>` in a `dir:` image. */
function blobPath(directory: ImageDirectory, digest: string): string {
  const [algorithm, hex] = digest.split(':');
  if (algorithm !== 'sha256' || hex === undefined) throw new Error(`unsupported digest ${digest}: expected sha256:<hex>`);
  if (directory.transport === 'dir') return join(directory.path, hex);
  return join(directory.path, 'blobs', algorithm, hex);
}

/** Writes the top-level manifest blob and `index.json`, which names it `latest`. */
async function finishOciFixture(name: string, layout: ImageDirectory, image: ComposedImage): Promise<ImageFixture> {
  await writeBlob(layout, image.manifestBytes, image.manifest.mediaType);

  const reference = 'latest';
  const entry: Descriptor = { ...image.manifest, annotations: { [REF_NAME_ANNOTATION]: reference } };
  await writeFile(join(layout.path, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));
  return { name, transport: 'oci', path: layout.path, reference, imageName: `oci:${layout.path}:${reference}`, ...image };
}
