import { isValidName } from '../registry/reference.js';
import { namesBlockedRegistry } from '../upstream/blocklist.js';

/**
 * One resource and the actions on it: an element of the `access` claim of the
 * Docker Registry token specification, and the parsed form of one scope.
 */
export interface AccessEntry {
  type: 'repository' | 'registry';
  name: string;
  actions: string[];
}

/** Actions a token may carry for a repository. `*` stands for all of them. */
export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete', '*'] as const;

export type RepositoryAction = (typeof REPOSITORY_ACTIONS)[number];

/** Name of the only registry-wide resource: `registry:catalog:*` allows listing every repository. */
export const CATALOG_NAME = 'catalog';

/**
 * Maximum number of distinct resources kept from one token request. Docker
 * clients ask for one or two (two for a cross-repository mount), and every kept
 * resource makes the token longer.
 */
export const MAX_SCOPES = 64;

/** A resource type with an optional class, such as `repository` or `repository(plugin)`. */
const RESOURCE_TYPE_PATTERN = /^([a-z0-9]+)(?:\([a-z0-9]+\))?$/;

/**
 * Returns whether the first path component of a name names another registry:
 * a `host:port`, `localhost`, or a public registry that Portcullis blocks by
 * default (`docker.io`, `ghcr.io`, `*.gcr.io`, …). Unlike
 * `splitDockerDomain` in the Go module github.com/distribution/reference, a
 * dot alone does not make a host, so `my.team` is an internal namespace.
 */
export function namesOtherRegistry(component: string): boolean {
  return component.includes(':') || component === 'localhost' || namesBlockedRegistry(component);
}

/**
 * Returns whether a name starts with another registry's host, as
 * `docker.io/library/nginx` or `localhost:5000/app` do. A single component is
 * never a host, so `docker.io` alone is a plain repository name.
 */
export function hasRegistryHostPrefix(name: string): boolean {
  const slash = name.indexOf('/');
  if (slash < 0) return false;
  return namesOtherRegistry(name.slice(0, slash));
}

/**
 * Returns whether a repository name may appear in a scope and a token. It must
 * follow the OCI name grammar, which already rejects uppercase letters, `..`,
 * percent-encoded characters such as `%2F`, and a port (`localhost:5000/x`).
 * It must also not start with another registry's host, so that no grant
 * covers an image of a public registry. Internal names with a dot in their
 * first component, such as `my.team/app`, are grantable.
 */
export function isGrantableName(name: string): boolean {
  return isValidName(name) && !hasRegistryHostPrefix(name);
}

/**
 * Parses the `scope` parameters of a token request. Each value contains one
 * or more scopes separated by spaces: `repository:<name>:<actions>` with actions
 * among pull, push, delete and `*`, or `registry:catalog:*`.
 *
 * A scope that is invalid is dropped, so it grants nothing, because the token
 * specification treats a request for more than the client may have as no
 * error. Unknown actions are dropped from a scope that has known ones. Scopes
 * on the same resource are merged. A resource class is ignored, so
 * `repository(plugin):x:pull` is `repository:x:pull`. Resources after the
 * first MAX_SCOPES are dropped.
 */
export function parseScopes(values: string | readonly string[] | undefined): AccessEntry[] {
  if (values === undefined) return [];
  const list = typeof values === 'string' ? [values] : values;

  const entries = new Map<string, AccessEntry>();
  for (const value of list) {
    for (const scope of value.split(' ')) {
      const entry = parseScope(scope);
      if (!entry) continue;
      addEntry(entries, entry);
    }
  }
  return [...entries.values()];
}

/**
 * Parses one scope, or returns undefined when it is invalid. The name sits
 * between the first and the last colon, because a name with a registry host
 * may contain a port.
 */
export function parseScope(scope: string): AccessEntry | undefined {
  const firstColon = scope.indexOf(':');
  const lastColon = scope.lastIndexOf(':');
  if (firstColon < 0 || lastColon === firstColon) return undefined;

  const typeMatch = RESOURCE_TYPE_PATTERN.exec(scope.slice(0, firstColon));
  if (!typeMatch) return undefined;
  const type = typeMatch[1];
  const name = scope.slice(firstColon + 1, lastColon);
  const actions = scope.slice(lastColon + 1).split(',');

  if (type === 'repository') return repositoryEntry(name, actions);
  if (type === 'registry') return registryEntry(name, actions);
  return undefined;
}

/** Formats an entry as a scope, as sent in a `WWW-Authenticate` challenge. */
export function formatScope(entry: AccessEntry): string {
  return `${entry.type}:${entry.name}:${entry.actions.join(',')}`;
}

/** Returns the actions of a repository scope in the order pull, push, delete, `*`, without duplicates and unknown ones. */
export function normalizeRepositoryActions(actions: readonly string[]): RepositoryAction[] {
  return REPOSITORY_ACTIONS.filter((action) => actions.includes(action));
}

function repositoryEntry(name: string, actions: readonly string[]): AccessEntry | undefined {
  if (!isGrantableName(name)) return undefined;
  const known = normalizeRepositoryActions(actions);
  if (known.length === 0) return undefined;
  return { type: 'repository', name, actions: known };
}

function registryEntry(name: string, actions: readonly string[]): AccessEntry | undefined {
  if (name !== CATALOG_NAME) return undefined;
  if (!actions.includes('*')) return undefined;
  return { type: 'registry', name, actions: ['*'] };
}

function addEntry(entries: Map<string, AccessEntry>, entry: AccessEntry): void {
  const key = `${entry.type}:${entry.name}`;
  const existing = entries.get(key);
  if (existing) {
    existing.actions = entry.type === 'repository' ? normalizeRepositoryActions([...existing.actions, ...entry.actions]) : existing.actions;
    return;
  }
  if (entries.size >= MAX_SCOPES) return;
  entries.set(key, { ...entry, actions: [...entry.actions] });
}
