import { RegistryError } from '../errors.js';
import { validateName } from './reference.js';

/** A /v2 endpoint, as the OCI Distribution Specification names them. */
export type RouteKind = 'base' | 'catalog' | 'tags' | 'manifest' | 'uploadStart' | 'upload' | 'blob' | 'referrers';

export interface MatchedRoute {
  kind: RouteKind;
  /** Repository name; empty for base and catalog. */
  name: string;
  /** Manifest reference, blob digest, upload session id or referrers subject; empty where the route has none. */
  reference: string;
}

// Checked in order: for a path that two patterns match, the endpoint form
// wins over reading an endpoint word as part of the repository name.
const PATTERNS: Array<[RouteKind, RegExp]> = [
  ['tags', /^\/(.+)\/tags\/list$/],
  ['manifest', /^\/(.+)\/manifests\/([^/]+)$/],
  ['uploadStart', /^\/(.+)\/blobs\/uploads\/?$/],
  ['upload', /^\/(.+)\/blobs\/uploads\/([^/]+)$/],
  ['blob', /^\/(.+)\/blobs\/([^/]+)$/],
  ['referrers', /^\/(.+)\/referrers\/([^/]+)$/],
];

/**
 * Matches a path below /v2 (for example `/library/app/manifests/latest`)
 * without checking the repository name. Returns null for a path that is no
 * endpoint. The path is matched as sent, so a percent-encoded name stays
 * encoded.
 */
export function splitRoute(path: string): MatchedRoute | null {
  if (path === '/' || path === '') return { kind: 'base', name: '', reference: '' };
  if (path === '/_catalog') return { kind: 'catalog', name: '', reference: '' };

  for (const [kind, pattern] of PATTERNS) {
    const match = pattern.exec(path);
    if (!match) continue;
    return { kind, name: match[1] as string, reference: match[2] ?? '' };
  }
  return null;
}

/** Throws NAME_INVALID when a route's repository name breaks the grammar; base and catalog have none. */
export function validateRouteName(route: MatchedRoute): MatchedRoute {
  if (route.kind !== 'base' && route.kind !== 'catalog') validateName(route.name);
  return route;
}

/**
 * Matches a path below /v2 like splitRoute, and throws NAME_INVALID when the
 * path is an endpoint but the repository name breaks the grammar, so a
 * percent-encoded name is invalid.
 */
export function matchRoute(path: string): MatchedRoute | null {
  const route = splitRoute(path);
  return route === null ? null : validateRouteName(route);
}

/** The HTTP methods each endpoint accepts. HEAD is accepted wherever GET is. */
export const ALLOWED_METHODS: Record<RouteKind, readonly string[]> = {
  base: ['GET', 'HEAD'],
  catalog: ['GET', 'HEAD'],
  tags: ['GET', 'HEAD'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  uploadStart: ['POST'],
  upload: ['GET', 'HEAD', 'PATCH', 'PUT', 'DELETE'],
  blob: ['GET', 'HEAD', 'DELETE'],
  referrers: ['GET', 'HEAD'],
};

/** Throws UNSUPPORTED (405) when the endpoint does not accept the method. */
export function checkMethod(route: MatchedRoute, method: string): void {
  if (ALLOWED_METHODS[route.kind].includes(method)) return;
  const allowed = ALLOWED_METHODS[route.kind];
  throw new RegistryError('UNSUPPORTED', `method ${method} is not allowed on this endpoint; allowed: ${allowed.join(', ')}`, { allowed }, 405, { Allow: allowed.join(', ') });
}
