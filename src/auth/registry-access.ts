import type { MatchedRoute } from '../registry/routes.js';
import type { RequiredAccess } from './authenticator.js';
import { CATALOG_NAME, type AccessEntry } from './scopes.js';

/** What a /v2 request needs, and the scopes a challenge should ask for. */
export interface RegistryAccessNeed {
  /** Every action the request needs; empty for the base endpoint, which needs only a known caller. */
  required: RequiredAccess[];
  /** Scopes for the WWW-Authenticate challenge, including optional ones such as a mount source. */
  challenge: AccessEntry[];
}

function repositoryAction(name: string, action: string): RequiredAccess {
  return { type: 'repository', name, action };
}

/**
 * Maps a /v2 route and method to the actions it needs: reads need pull,
 * writes and uploads need push, deletes need delete, and the catalog needs
 * `registry:catalog:*`. A cross-repository mount needs push on the target;
 * pull on the source is asked for in the challenge but checked by the mount
 * itself, which falls back to a normal upload without it.
 */
export function registryAccessNeed(route: MatchedRoute, method: string, mountSource: string | null): RegistryAccessNeed {
  if (route.kind === 'base') return { required: [], challenge: [] };
  if (route.kind === 'catalog') {
    return { required: [{ type: 'registry', name: CATALOG_NAME, action: '*' }], challenge: [{ type: 'registry', name: CATALOG_NAME, actions: ['*'] }] };
  }

  const name = route.name;
  if (method === 'DELETE' && (route.kind === 'manifest' || route.kind === 'blob')) {
    return { required: [repositoryAction(name, 'delete')], challenge: [{ type: 'repository', name, actions: ['delete'] }] };
  }
  const writes = route.kind === 'uploadStart' || route.kind === 'upload' || (route.kind === 'manifest' && method === 'PUT');
  if (!writes) return { required: [repositoryAction(name, 'pull')], challenge: [{ type: 'repository', name, actions: ['pull'] }] };

  // Docker clients ask for pull and push together when they push, so the challenge does too.
  const challenge: AccessEntry[] = [{ type: 'repository', name, actions: ['pull', 'push'] }];
  if (route.kind === 'uploadStart' && mountSource !== null && mountSource !== name) challenge.push({ type: 'repository', name: mountSource, actions: ['pull'] });
  return { required: [repositoryAction(name, 'push')], challenge };
}
