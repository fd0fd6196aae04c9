/**
 * Wrappers around the skopeo CLI for the end-to-end tests.
 *
 * Every call runs skopeo without a shell and with a private configuration, so
 * no file on the machine can redirect it to another host. The configuration
 * is `--insecure-policy` (no signature policy), an empty `registries.conf`
 * (no mirrors, no short-name search), an empty `registries.d` (no signature
 * lookaside), an empty auth file and a private `--tmpdir`.
 *
 * Image names must use the `oci:`, `oci-archive:` or `dir:` transport, or
 * `docker://` with a loopback host. TLS verification is off for `docker://`,
 * so skopeo tries HTTPS first and then falls back to plain HTTP.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Default limit for one skopeo run, in milliseconds. Pushing the 40 MiB layer to a local gateway took about one second here. */
const DEFAULT_TIMEOUT_MS = 120_000;

/** Maximum stdout or stderr kept from one run, in bytes. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

const LOCAL_TRANSPORTS = ['oci:', 'oci-archive:', 'dir:'];
const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];
const CREDENTIAL_FLAGS = new Set(['--creds', '--src-creds', '--dest-creds']);

/** Options that every wrapper accepts. */
export interface SkopeoOptions {
  /**
   * `USERNAME[:PASSWORD]` for every `docker://` side of the call. The value is
   * visible in the process list while skopeo runs, so use test accounts only.
   */
  creds?: string;
  /** Milliseconds before skopeo is killed, 120 000 unless set. */
  timeoutMs?: number;
}

/** Options of `copy`. */
export interface CopyOptions extends SkopeoOptions {
  /** Copies every image of an index, not only the one for this machine's platform (`--all`). */
  all?: boolean;
  /** Fails instead of changing any digest, for example by converting or compressing (`--preserve-digests`). */
  preserveDigests?: boolean;
  /** Manifest type to write (`--format`). skopeo 1.9.3 ignores it when `preserveDigests` is set. */
  format?: 'oci' | 'v2s2' | 'v2s1';
}

/** Result of `copy`. */
export interface CopyResult {
  /** Digest of the manifest or index that skopeo wrote to the destination (`--digestfile`). */
  manifestDigest: string;
}

/** Platform that `inspect` selects from an index instead of this machine's. */
export interface PlatformOverride {
  os: string;
  architecture: string;
  variant?: string;
}

/** Options of `inspect`. */
export interface InspectOptions extends SkopeoOptions {
  /** Returns the manifest bytes unchanged instead of skopeo's summary (`--raw`). */
  raw?: boolean;
  /** Platform to pick from an index. Ignored with `raw`. */
  platform?: PlatformOverride;
}

/** Summary that `skopeo inspect` prints without `--raw`, as of skopeo 1.9.3. */
export interface ImageInspection {
  /** Repository without tag, for example `127.0.0.1:5000/e2e/single-layer`. Absent for `oci:` and `dir:`. */
  Name?: string;
  /** Digest of the manifest or index that the name resolves to, before platform selection. */
  Digest: string;
  RepoTags: string[];
  Created?: string;
  DockerVersion?: string;
  Labels: Record<string, string> | null;
  Architecture: string;
  Os: string;
  /** Layer digests of the selected image, in manifest order. */
  Layers: string[];
  Env: string[] | null;
}

/** A failed or timed-out skopeo run. The message contains skopeo's stderr. */
export class SkopeoError extends Error {
  /** Arguments of the run, with credentials replaced by `***`. */
  readonly args: string[];
  /** Exit code, or null when skopeo was killed or did not start. */
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly timedOut: boolean;

  constructor(args: string[], cause: ExecFileException, stderr: string, timeoutMs: number) {
    const exitCode = typeof cause.code === 'number' ? cause.code : null;
    const timedOut = cause.killed === true && exitCode === null;
    const command = `skopeo ${args.join(' ')}`;
    let reason = `failed with exit code ${exitCode}`;
    if (timedOut) reason = `timed out after ${timeoutMs} ms`;
    if (cause.code === 'ENOENT') reason = 'could not start because skopeo is not installed or not on PATH';

    // The cause is not attached because its message repeats the command line with any credentials.
    super(`${command} ${reason}: ${stderr.trim() || 'no output on stderr'}`);
    this.name = 'SkopeoError';
    this.args = args;
    this.exitCode = exitCode;
    this.stderr = stderr;
    this.timedOut = timedOut;
  }
}

/** Paths of the configuration that every run uses, created on first use. */
interface SkopeoConfig {
  root: string;
  registriesConf: string;
  registriesDir: string;
  authFile: string;
  tmpDir: string;
}

let config: SkopeoConfig | undefined;
let availability: Promise<boolean> | undefined;

/** Checks once per process whether `skopeo --version` runs. */
export function isSkopeoAvailable(): Promise<boolean> {
  availability ??= new Promise((resolve) => {
    execFile('skopeo', ['--version'], { timeout: 10_000 }, (error) => resolve(error === null));
  });
  return availability;
}

/**
 * Copies an image between transports (`skopeo copy`) and returns the digest
 * of the manifest written to the destination.
 */
export async function copy(source: string, destination: string, options: CopyOptions = {}): Promise<CopyResult> {
  assertAllowedImageName(source);
  assertAllowedImageName(destination);
  const digestDirectory = await mkdtemp(join(ensureConfig().root, 'copy-'));
  const digestFile = join(digestDirectory, 'digest');

  const args = ['copy', '--quiet', '--digestfile', digestFile];
  if (options.all === true) args.push('--all');
  if (options.preserveDigests === true) args.push('--preserve-digests');
  if (options.format !== undefined) args.push('--format', options.format);
  args.push(...registryFlags(source, 'src-', options), ...registryFlags(destination, 'dest-', options));
  args.push(source, destination);

  try {
    await runSkopeo(args, options);
    return { manifestDigest: (await readFile(digestFile, 'utf8')).trim() };
  } finally {
    await rm(digestDirectory, { recursive: true, force: true });
  }
}

/** Returns the raw manifest bytes of an image (`skopeo inspect --raw`). */
export function inspect(imageName: string, options: InspectOptions & { raw: true }): Promise<Buffer>;
/** Returns skopeo's summary of an image (`skopeo inspect`). skopeo 1.9.3 fails on artifacts whose config is not an image config. */
export function inspect(imageName: string, options?: InspectOptions & { raw?: false }): Promise<ImageInspection>;
export async function inspect(imageName: string, options: InspectOptions = {}): Promise<Buffer | ImageInspection> {
  assertAllowedImageName(imageName);

  const args: string[] = [];
  if (options.platform !== undefined && options.raw !== true) {
    args.push('--override-os', options.platform.os, '--override-arch', options.platform.architecture);
    if (options.platform.variant !== undefined) args.push('--override-variant', options.platform.variant);
  }
  args.push('inspect');
  if (options.raw === true) args.push('--raw');
  args.push(...registryFlags(imageName, '', options), imageName);

  const stdout = await runSkopeo(args, options);
  if (options.raw === true) return stdout;
  return JSON.parse(stdout.toString('utf8')) as ImageInspection;
}

/** Lists the tags of a `docker://` repository (`skopeo list-tags`). */
export async function listTags(repository: string, options: SkopeoOptions = {}): Promise<string[]> {
  assertAllowedImageName(repository);

  const stdout = await runSkopeo(['list-tags', ...registryFlags(repository, '', options), repository], options);
  const parsed = JSON.parse(stdout.toString('utf8')) as { Tags?: string[] | null };
  return parsed.Tags ?? [];
}

/**
 * Deletes an image (`skopeo delete`). For `docker://`, skopeo 1.9.3 reads the
 * manifest by tag, takes the digest from the `Docker-Content-Digest` response
 * header and sends `DELETE /v2/<name>/manifests/<digest>`. Any status other
 * than 202 fails the call.
 */
export async function deleteImage(imageName: string, options: SkopeoOptions = {}): Promise<void> {
  assertAllowedImageName(imageName);
  await runSkopeo(['delete', ...registryFlags(imageName, '', options), imageName], options);
}

/**
 * Rejects an image name that could make skopeo contact another host: a
 * `docker://` name must start with a loopback host and port, and other
 * transports must be local ones.
 */
function assertAllowedImageName(imageName: string): void {
  if (LOCAL_TRANSPORTS.some((transport) => imageName.startsWith(transport))) return;

  if (imageName.startsWith('docker://')) {
    const rest = imageName.slice('docker://'.length);
    const host = rest.slice(0, rest.indexOf('/'));
    const hostname = host.replace(/:\d+$/, '');
    if (rest.includes('/') && LOOPBACK_HOSTS.includes(hostname)) return;
  }

  throw new Error(
    `image name ${imageName} is not allowed in tests: use oci:, oci-archive:, dir:, or docker://127.0.0.1:PORT/REPOSITORY`,
  );
}

/** Returns the TLS, auth-file and credential flags for one side of a call, or none for a local transport. */
function registryFlags(imageName: string, prefix: '' | 'src-' | 'dest-', options: SkopeoOptions): string[] {
  if (!imageName.startsWith('docker://')) return [];

  const flags = [`--${prefix}tls-verify=false`, `--${prefix}authfile`, ensureConfig().authFile];
  if (options.creds !== undefined) flags.push(`--${prefix}creds`, options.creds);
  return flags;
}

function runSkopeo(commandArgs: string[], options: SkopeoOptions): Promise<Buffer> {
  const settings = ensureConfig();
  const args = [
    '--insecure-policy',
    '--registries-conf',
    settings.registriesConf,
    '--registries.d',
    settings.registriesDir,
    '--tmpdir',
    settings.tmpDir,
    ...commandArgs,
  ];
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  return new Promise((resolve, reject) => {
    execFile(
      'skopeo',
      args,
      { encoding: 'buffer', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve(stdout);
          return;
        }
        reject(new SkopeoError(redactCredentials(args), error, stderr.toString('utf8'), timeoutMs));
      },
    );
  });
}

function redactCredentials(args: string[]): string[] {
  return args.map((arg, index) => (index > 0 && CREDENTIAL_FLAGS.has(args[index - 1] ?? '') ? '***' : arg));
}

/**
 * Creates, once per process, a private configuration directory so that
 * skopeo reads no system or user configuration. The directory is removed when
 * the process exits.
 */
function ensureConfig(): SkopeoConfig {
  if (config !== undefined) return config;

  const root = mkdtempSync(join(tmpdir(), 'portcullis-skopeo-'));
  const created: SkopeoConfig = {
    root,
    registriesConf: join(root, 'registries.conf'),
    registriesDir: join(root, 'registries.d'),
    authFile: join(root, 'auth.json'),
    tmpDir: join(root, 'tmp'),
  };
  writeFileSync(created.registriesConf, '');
  mkdirSync(created.registriesDir);
  writeFileSync(created.authFile, JSON.stringify({ auths: {} }));
  mkdirSync(created.tmpDir);

  process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  config = created;
  return created;
}
