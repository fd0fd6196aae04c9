import type { MatchedRoute } from '../registry/routes.js';
import type { RequiredAccess } from './authenticator.js';
import { CATALOG_NAME, type AccessEntry } from './scopes.js';

/** Access to one resource that a request needs: any one of the listed actions is enough. */
export interface AccessRequirement {
  type: RequiredAccess['type'];
  name: string;
  /** Actions that each meet the requirement, the usual one first. */
  anyOf: string[];
}

/** Access a /v2 request needs, and the scopes its challenge requests. */
export interface RegistryAccessNeed {
  /** Every requirement the request must meet; empty for the base endpoint, which needs only a known caller. */
  required: AccessRequirement[];
  /** Scopes for the WWW-Authenticate challenge, including optional ones such as a mount source. */
  challenge: AccessEntry[];
}

/** Returns each action of a requirement as the access a caller is asked about. */
export function accessOptions(requirement: AccessRequirement): RequiredAccess[] {
  return requirement.anyOf.map((action) => ({ type: requirement.type, name: requirement.name, action }));
}

function repositoryRequirement(name: string, ...anyOf: string[]): AccessRequirement {
  return { type: 'repository', name, anyOf };
}

/**
 * Maps a /v2 route and method to the actions it needs: reads need pull,
 * writes and uploads need push, deletes need delete, and the catalog needs
 * `registry:catalog:*`. A HEAD on a manifest or blob needs pull or push,
 * because push clients check that way whether content exists before they
 * upload it. A cross-repository mount needs push on the target. Pull on the
 * source is asked for in the challenge but checked by the mount itself,
 * which falls back to a normal upload without it.
 */
export function registryAccessNeed(route: MatchedRoute, method: string, mountSource: string | null): RegistryAccessNeed {
  if (route.kind === 'base') return { required: [], challenge: [] };
  if (route.kind === 'catalog') {
    return { required: [{ type: 'registry', name: CATALOG_NAME, anyOf: ['*'] }], challenge: [{ type: 'registry', name: CATALOG_NAME, actions: ['*'] }] };
  }

  const name = route.name;
  if (method === 'DELETE' && (route.kind === 'manifest' || route.kind === 'blob')) {
    return { required: [repositoryRequirement(name, 'delete')], challenge: [{ type: 'repository', name, actions: ['delete'] }] };
  }
  if (method === 'HEAD' && (route.kind === 'manifest' || route.kind === 'blob')) {
    return { required: [repositoryRequirement(name, 'pull', 'push')], challenge: [{ type: 'repository', name, actions: ['pull'] }] };
  }
  const writes = route.kind === 'uploadStart' || route.kind === 'upload' || (route.kind === 'manifest' && method === 'PUT');
  if (!writes) return { required: [repositoryRequirement(name, 'pull')], challenge: [{ type: 'repository', name, actions: ['pull'] }] };

  // Docker clients ask for pull and push together when they push, so the challenge does too.
  const challenge: AccessEntry[] = [{ type: 'repository', name, actions: ['pull', 'push'] }];
  if (route.kind === 'uploadStart' && mountSource !== null && mountSource !== name) challenge.push({ type: 'repository', name: mountSource, actions: ['pull'] });
  return { required: [repositoryRequirement(name, 'push')], challenge };
}
