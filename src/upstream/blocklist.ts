/**
 * Blocking of public registries. Portcullis never fetches anything from
 * another registry on a client's behalf, so a request for a repository that
 * names one is denied with a message that explains how to import the image.
 */

/** Public registries blocked when BLOCKED_REGISTRIES is unset. `*.gcr.io` matches every subdomain of gcr.io. */
export const DEFAULT_BLOCKED_REGISTRIES: readonly string[] = [
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'ghcr.io',
  'quay.io',
  'gcr.io',
  '*.gcr.io',
  'registry.k8s.io',
  'k8s.gcr.io',
  'public.ecr.aws',
  'mcr.microsoft.com',
  'registry.gitlab.com',
  'nvcr.io',
];

/** The namespace a Docker daemon puts official Docker Hub images in when Portcullis is its `registry-mirrors` entry. */
export const DOCKER_HUB_OFFICIAL_NAMESPACE = 'library';

/** A lowercase DNS host name, optionally starting with the wildcard label `*.`. */
const ENTRY_PATTERN = /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;

/** Returns why a BLOCKED_REGISTRIES entry is invalid, or undefined when it is valid. */
export function blocklistEntryProblem(entry: string): string | undefined {
  if (ENTRY_PATTERN.test(entry)) return undefined;
  return 'expected a lowercase host name such as quay.io, or a wildcard such as *.gcr.io';
}

/** The reason a repository name is blocked: the registry it names and the image to import instead. */
export interface UpstreamBlock {
  /** The registry host the name starts with, or `docker.io` for the `library/` form. */
  registry: string;
  /** The name of the image at that registry, as an import's source. */
  source: string;
}

/** Returns whether a host matches a blocklist entry: equal, or a subdomain for a `*.` entry. */
function hostMatches(entry: string, host: string): boolean {
  if (entry.startsWith('*.')) return host.endsWith(entry.slice(1));
  return host === entry;
}

/**
 * Returns whether a first path component names a public registry of the
 * list: one of its hosts, matched without regard to case, with or without a
 * port.
 */
export function namesBlockedRegistry(component: string, entries: readonly string[] = DEFAULT_BLOCKED_REGISTRIES): boolean {
  const host = component.toLowerCase().replace(/:\d*$/, '');
  return entries.some((entry) => hostMatches(entry, host));
}

/** Decides which repository names belong to other registries. */
export class UpstreamBlocklist {
  private readonly entries: readonly string[];

  /** Takes host names and `*.` wildcards. An empty list still blocks `host:port` names and `library/…`. */
  constructor(entries: readonly string[] = DEFAULT_BLOCKED_REGISTRIES) {
    this.entries = entries.map((entry) => entry.toLowerCase());
  }

  /**
   * Returns why a repository name is blocked, or null for an internal name.
   * A name is blocked when it has more than one path component and its first
   * one is a listed registry, any `host:port`, or `library`. A single
   * component is never a registry host, and a first component that merely
   * contains a dot (`my.team/app`) is an internal name unless it is listed.
   */
  check(name: string): UpstreamBlock | null {
    const slash = name.indexOf('/');
    if (slash <= 0) return null;
    const first = name.slice(0, slash);

    if (first === DOCKER_HUB_OFFICIAL_NAMESPACE) return { registry: 'docker.io', source: `docker.io/${name}` };
    if (first.includes(':') || namesBlockedRegistry(first, this.entries)) return { registry: first.toLowerCase(), source: name };
    return null;
  }
}

/** Builds the denial message for a blocked name, with the import request that replaces the pull. */
export function upstreamDenialMessage(name: string, block: UpstreamBlock): string {
  const viaMirror =
    name.startsWith(`${DOCKER_HUB_OFFICIAL_NAMESPACE}/`) && block.registry === 'docker.io'
      ? ` (${name} is how a Docker daemon that uses Portcullis as its registry mirror asks for the official image ${name.slice(DOCKER_HUB_OFFICIAL_NAMESPACE.length + 1)})`
      : '';
  return (
    `${name} is an image of the public registry ${block.registry}${viaMirror}, and Portcullis never pulls public images. ` +
    `Ask an administrator to import it: POST /api/v1/imports with {"source": "${block.source}:<tag>", "target": "<team>/<repository>"}; ` +
    'the imported image is pulled from its internal name once it is certified.'
  );
}
