/**
 * Images for the secret scan tests: gzip tar layers built in memory with
 * tar-stream, pushed with the registry client or written as an OCI image
 * layout for skopeo, and a wait for a scan to reach a state.
 *
 * Every planted secret is generated at test time and is fake: it grants
 * access to nothing.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { Knex } from 'knex';
import tar from 'tar-stream';
import { blobOf, MEDIA, ociImageManifest, type BlobContent, type ManifestDocument, type RegistryClient } from './registry-client.js';

/** Content of one file in a layer: text or bytes. */
export type LayerFiles = Record<string, string | Buffer>;

/** Builds a gzip-compressed tar layer with the files, in the order given. */
export async function tarGzLayer(files: LayerFiles): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = new Promise<void>((resolve, reject) => {
    pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const [name, content] of Object.entries(files)) {
    await new Promise<void>((resolve, reject) => pack.entry({ name, mode: 0o644, mtime: new Date(0) }, content, (error) => (error ? reject(error) : resolve())));
  }
  pack.finalize();
  await collected;
  return gzipSync(Buffer.concat(chunks));
}

/** Returns an OCI image configuration with the given environment and history. */
export function imageConfig(options: { env?: string[]; history?: string[] } = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...(options.env ?? [])] },
      rootfs: { type: 'layers', diff_ids: [] },
      history: (options.history ?? []).map((createdBy) => ({ created: '2024-01-01T00:00:00Z', created_by: createdBy })),
      // Unique per call, so each test pushes its own digest.
      id: randomUUID(),
    }),
  );
}

/** Pushes an OCI image of the config and gzip tar layers; returns its manifest. */
export async function pushLayeredImage(client: RegistryClient, repository: string, config: Buffer, layers: Buffer[], tag?: string): Promise<ManifestDocument> {
  const configBlob = blobOf(config, MEDIA.ociConfig);
  const layerBlobs: BlobContent[] = layers.map((layer) => blobOf(layer, MEDIA.ociLayer));
  await client.pushBlobs(repository, [configBlob, ...layerBlobs]);
  const manifest = ociImageManifest(
    configBlob.descriptor,
    layerBlobs.map((blob) => blob.descriptor),
  );
  return client.pushManifest(repository, tag ?? manifest.digest, manifest);
}

/** Waits until the scan of a digest is in one of the states; returns the state. Throws after the timeout. */
export async function waitForScanState(db: Knex, digest: string, states: readonly string[], timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no scan row';
  while (Date.now() < deadline) {
    const row: { state: string } | undefined = await db('scans').where({ digest }).first('state');
    last = row?.state ?? 'no scan row';
    if (row && states.includes(row.state)) return row.state;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the scan of ${digest} did not reach ${states.join(' or ')} within ${timeoutMs} ms; it is ${last}`);
}

/** Returns a random string of upper-case letters and digits, as in AWS access key ids. */
function randomUpperAlphanumeric(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  return [...randomBytes(length)].map((byte) => alphabet[byte % alphabet.length]).join('');
}

/** Fake secrets planted in the secrets image, generated per run. */
export interface PlantedSecrets {
  awsAccessKeyId: string;
  awsSecretAccessKey: string;
  sshPrivateKey: string;
  dbPassword: string;
  githubToken: string;
}

/** Generates the fake secrets, with an ed25519 key pair from ssh-keygen in OpenSSH format. */
export async function generateSecrets(): Promise<PlantedSecrets> {
  const directory = await mkdtemp(join(tmpdir(), 'portcullis-ssh-'));
  try {
    await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fake@portcullis.test', '-f', join(directory, 'id_ed25519')]);
    return {
      awsAccessKeyId: `AKIA${randomUpperAlphanumeric(16)}`,
      awsSecretAccessKey: randomBytes(30).toString('base64'),
      sshPrivateKey: await readFile(join(directory, 'id_ed25519'), 'utf8'),
      dbPassword: `Pw-${randomBytes(12).toString('hex')}`,
      githubToken: `ghp_${randomBytes(27).toString('base64').replace(/[^A-Za-z0-9]/g, 'x').slice(0, 36)}`,
    };
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** AWS's documented example key pair, which the scanner must ignore. */
export const AWS_EXAMPLE_KEYS = 'AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n';

/**
 * Builds the layers and config of the secrets image: layer 1 has `app/.env`
 * with the AWS key pair, the OpenSSH private key at
 * `home/app/.ssh/id_ed25519` and the documented example keys in
 * `app/docs/aws-example.env`. Layer 2 deletes the key with a whiteout. The
 * config has DB_PASSWORD in Env and a GitHub token in a RUN line of its
 * history.
 */
export async function secretsImage(secrets: PlantedSecrets): Promise<{ config: Buffer; layers: Buffer[] }> {
  const first = await tarGzLayer({
    'app/.env': `AWS_ACCESS_KEY_ID=${secrets.awsAccessKeyId}\nAWS_SECRET_ACCESS_KEY=${secrets.awsSecretAccessKey}\n`,
    'app/docs/aws-example.env': AWS_EXAMPLE_KEYS,
    'app/main.py': 'print("hello")\n',
    'home/app/.ssh/id_ed25519': secrets.sshPrivateKey,
  });
  const second = await tarGzLayer({ 'home/app/.ssh/.wh.id_ed25519': '', 'app/VERSION': '1.0\n' });
  const config = imageConfig({
    env: [`DB_PASSWORD=${secrets.dbPassword}`],
    history: ['ADD app /app', `RUN curl -fsSL -H "Authorization: token ${secrets.githubToken}" https://git.example.com/api/v3/repos/acme/app/tarball -o /tmp/app.tgz`],
  });
  return { config, layers: [first, second] };
}

/**
 * Reads up to `maxBytes` of regular files under each directory into one
 * layer's files, with paths relative to the file system root. Unreadable
 * files are skipped.
 */
export async function filesUnder(directories: string[], maxBytes: number): Promise<LayerFiles> {
  const files: LayerFiles = {};
  let total = 0;
  const visit = async (directory: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(directory, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      if (total >= maxBytes) return;
      const path = join(directory, entry.name);
      if (entry.isDirectory()) {
        await visit(path);
        continue;
      }
      // Symbolic links in /etc/ssl/certs point at the certificates; reading through them gives their content.
      try {
        const info = await stat(path);
        if (!info.isFile() || total + info.size > maxBytes) continue;
        files[relative('/', path)] = await readFile(path);
        total += info.size;
      } catch {
        continue;
      }
    }
  };
  for (const directory of directories) await visit(directory);
  return files;
}

/** Writes an OCI image layout with one image under `reference`, for skopeo to copy; returns the layout directory. */
export async function writeOciLayout(directory: string, reference: string, config: Buffer, layers: Buffer[]): Promise<string> {
  const blobs = join(directory, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const write = async (content: Buffer, mediaType: string) => {
    const blob = blobOf(content, mediaType);
    await writeFile(join(blobs, blob.descriptor.digest.slice('sha256:'.length)), content);
    return blob.descriptor;
  };
  const configDescriptor = await write(config, MEDIA.ociConfig);
  const layerDescriptors = [];
  for (const layer of layers) layerDescriptors.push(await write(layer, MEDIA.ociLayer));
  const manifest = ociImageManifest(configDescriptor, layerDescriptors);
  await write(manifest.body, MEDIA.ociManifest);

  await writeFile(join(directory, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ ...manifest.descriptor, annotations: { 'org.opencontainers.image.ref.name': reference } }] };
  await writeFile(join(directory, 'index.json'), JSON.stringify(index));
  return directory;
}
