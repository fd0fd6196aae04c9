/**
 * Wrappers around the podman CLI for the end-to-end authentication tests.
 *
 * Every call runs podman without a shell and with a private configuration,
 * so no file on the machine can redirect it to another host or touch the
 * machine's images. The configuration is an empty `registries.conf` (no
 * mirrors, no short-name search), an empty `containers.conf`, a private auth
 * file, and private `vfs` storage, run and temporary directories that
 * `close` removes.
 * Registry images must be `docker://` names with a loopback host, and TLS
 * verification is off for them.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Limit for one podman run, in milliseconds. A push or pull of the single-layer fixture took under a second here. */
const TIMEOUT_MS = 60_000;

const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];

/**
 * Parent of the private directories. podman rejects a run root longer than
 * 50 characters, and it names an image pulled from an OCI layout after the
 * layout's path, which must then be lowercase, so the directory is short and
 * its name uses lowercase hexadecimal only.
 */
const ROOT_PARENT = '/tmp';

/** A failed or timed-out podman run. The message contains podman's stderr. */
export class PodmanError extends Error {
  readonly exitCode: number | null;
  readonly stderr: string;

  constructor(args: readonly string[], cause: ExecFileException, stderr: string) {
    const exitCode = typeof cause.code === 'number' ? cause.code : null;
    super(`podman ${args.join(' ')} failed with exit code ${exitCode}: ${stderr.trim() || 'no output on stderr'}`);
    this.name = 'PodmanError';
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Checks whether `podman --version` runs. */
export function isPodmanAvailable(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('podman', ['--version'], { timeout: 10_000 }, (error) => resolve(error === null));
  });
}

/** A podman configuration of its own, with its own login state and image storage. */
export class PodmanSession {
  private constructor(private readonly root: string) {}

  /** Creates the private configuration and storage directories. */
  static async create(): Promise<PodmanSession> {
    const root = join(ROOT_PARENT, `pcpodman-${randomBytes(6).toString('hex')}`);
    await mkdir(root);
    const session = new PodmanSession(root);
    for (const directory of ['storage', 'run', 'tmp', 'config', 'layouts']) await mkdir(join(root, directory));
    await writeFile(join(root, 'registries.conf'), '');
    await writeFile(join(root, 'containers.conf'), '');
    await writeFile(join(root, 'storage.conf'), `[storage]\ndriver = "vfs"\nrunroot = "${join(root, 'run')}"\ngraphroot = "${join(root, 'storage')}"\n`);
    await writeFile(join(root, 'auth.json'), JSON.stringify({ auths: {} }));
    return session;
  }

  /** Logs in to a registry with `podman login --password-stdin`. */
  async login(host: string, username: string, password: string): Promise<void> {
    assertLoopbackHost(host);
    await this.run(['login', '--tls-verify=false', '--username', username, '--password-stdin', host], `${password}\n`);
  }

  /** Removes the stored login for a registry. */
  async logout(host: string): Promise<void> {
    assertLoopbackHost(host);
    await this.run(['logout', host]);
  }

  /** Copies an OCI image layout into local storage and returns the local image name. */
  async pullLayout(layoutPath: string, reference: string): Promise<string> {
    const copy = join(this.root, 'layouts', randomBytes(4).toString('hex'));
    await cp(layoutPath, copy, { recursive: true });
    await this.run(['pull', '--quiet', `oci:${copy}:${reference}`]);
    return `localhost${copy}:${reference}`;
  }

  /** Pushes a local image to a `docker://` name and returns the digest of the pushed manifest. */
  async push(localImage: string, destination: string): Promise<string> {
    assertLoopbackImage(destination);
    const digestFile = join(this.root, 'tmp', `digest-${randomBytes(4).toString('hex')}`);
    await this.run(['push', '--quiet', '--tls-verify=false', '--digestfile', digestFile, localImage, destination]);
    return (await readFile(digestFile, 'utf8')).trim();
  }

  /**
   * Pulls a `docker://` image into local storage and returns the image's
   * repository digests (`host:port/name@sha256:…`). An image whose config is
   * already stored under another name keeps that name's digest as its own
   * `Digest`, so only the repository digests show what this pull fetched.
   */
  async pull(source: string): Promise<string[]> {
    assertLoopbackImage(source);
    await this.run(['pull', '--quiet', '--tls-verify=false', source]);
    const output = await this.run(['image', 'inspect', '--format', '{{range .RepoDigests}}{{println .}}{{end}}', source.slice('docker://'.length)]);
    return output.split('\n').filter((line) => line.length > 0);
  }

  /** Removes the private directories with the stored images and logins. */
  async close(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }

  private run(args: string[], input?: string): Promise<string> {
    const globalArgs = ['--root', join(this.root, 'storage'), '--runroot', join(this.root, 'run'), '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs'];
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.root,
      CONTAINERS_REGISTRIES_CONF: join(this.root, 'registries.conf'),
      CONTAINERS_CONF: join(this.root, 'containers.conf'),
      CONTAINERS_STORAGE_CONF: join(this.root, 'storage.conf'),
      REGISTRY_AUTH_FILE: join(this.root, 'auth.json'),
      TMPDIR: join(this.root, 'tmp'),
      XDG_RUNTIME_DIR: join(this.root, 'run'),
      XDG_CONFIG_HOME: join(this.root, 'config'),
    };
    const fullArgs = [...globalArgs, ...args];
    return new Promise((resolve, reject) => {
      const child = execFile('podman', fullArgs, { env, timeout: TIMEOUT_MS, killSignal: 'SIGKILL', encoding: 'utf8' }, (error, stdout, stderr) => {
        if (error === null) resolve(stdout);
        else reject(new PodmanError(args, error, stderr));
      });
      child.stdin?.end(input ?? '');
    });
  }
}

function assertLoopbackHost(host: string): void {
  const hostname = host.replace(/:\d+$/, '');
  if (!LOOPBACK_HOSTS.includes(hostname)) throw new Error(`registry host ${host} is not allowed in tests: use 127.0.0.1:PORT`);
}

function assertLoopbackImage(imageName: string): void {
  if (!imageName.startsWith('docker://')) throw new Error(`image name ${imageName} is not allowed in tests: use docker://127.0.0.1:PORT/REPOSITORY`);
  const rest = imageName.slice('docker://'.length);
  assertLoopbackHost(rest.slice(0, rest.indexOf('/')));
}
