import { matchesPattern, patternProblem } from './patterns.js';
import { CATALOG_NAME, isGrantableName, normalizeRepositoryActions, type AccessEntry } from './scopes.js';

/**
 * Permissions on the repositories a grant's pattern matches. `pull-uncertified`
 * allows pulling content that is not certified yet, and implies `pull`.
 * `import` allows importing images from allowlisted upstreams into the
 * repository through the management API; it is never a token action.
 */
export const REPOSITORY_PERMISSIONS = ['pull', 'push', 'delete', 'pull-uncertified', 'import'] as const;

export type RepositoryPermission = (typeof REPOSITORY_PERMISSIONS)[number];

/**
 * Permissions that do not depend on a repository. A grant carries them only
 * with the pattern `**`. `admin` implies every repository permission on every
 * repository and the catalog, but none of the other global permissions, so an
 * administrator cannot certify images or read the audit log without the group.
 */
export const GLOBAL_PERMISSIONS = ['certify:it', 'certify:security', 'certify:qa', 'audit:read', 'admin'] as const;

export type GlobalPermission = (typeof GLOBAL_PERMISSIONS)[number];

export type Permission = RepositoryPermission | GlobalPermission;

/** The pattern a grant must have for its global permissions to count. */
export const GLOBAL_PATTERN = '**';

/** Built-in groups and the global permission each member holds. */
export const BUILT_IN_GROUPS = {
  admins: 'admin',
  it: 'certify:it',
  security: 'certify:security',
  qa: 'certify:qa',
  auditors: 'audit:read',
} as const satisfies Record<string, GlobalPermission>;

export type BuiltInGroup = keyof typeof BUILT_IN_GROUPS;

/** Permissions on the repositories that match a pattern, as stored for a user, robot or group. */
export interface Grant {
  pattern: string;
  permissions: string[];
}

/** Returns whether a string names a repository permission. */
export function isRepositoryPermission(permission: string): permission is RepositoryPermission {
  return (REPOSITORY_PERMISSIONS as readonly string[]).includes(permission);
}

/** Returns whether a string names a global permission. */
export function isGlobalPermission(permission: string): permission is GlobalPermission {
  return (GLOBAL_PERMISSIONS as readonly string[]).includes(permission);
}

/** Returns whether a string names a built-in group. */
export function isBuiltInGroup(group: string): group is BuiltInGroup {
  return Object.hasOwn(BUILT_IN_GROUPS, group);
}

/**
 * Returns the problems of a grant, empty when it is valid: an invalid pattern,
 * an unknown permission, or a global permission with a pattern other than `**`.
 * Evaluation ignores what these problems name, so a grant should be checked
 * with this function before it is stored.
 */
export function grantProblems(grant: Grant): string[] {
  const problems: string[] = [];

  const pattern = patternProblem(grant.pattern);
  if (pattern !== undefined) problems.push(`invalid pattern "${grant.pattern}": ${pattern}`);

  for (const permission of grant.permissions) {
    if (isRepositoryPermission(permission)) continue;
    if (!isGlobalPermission(permission)) {
      problems.push(`unknown permission "${permission}": use one of ${[...REPOSITORY_PERMISSIONS, ...GLOBAL_PERMISSIONS].join(', ')}`);
      continue;
    }
    if (grant.pattern !== GLOBAL_PATTERN) {
      problems.push(`the global permission "${permission}" needs the pattern "${GLOBAL_PATTERN}"`);
    }
  }
  return problems;
}

/**
 * Returns the global permissions of an identity: those its built-in groups
 * imply and those its grants carry with the pattern `**`. Other groups add
 * nothing here, because their grants are expected among `grants`.
 */
export function globalPermissions(grants: readonly Grant[], groups: readonly string[]): Set<GlobalPermission> {
  const permissions = new Set<GlobalPermission>();
  for (const group of groups) {
    if (isBuiltInGroup(group)) permissions.add(BUILT_IN_GROUPS[group]);
  }
  for (const grant of grants) {
    if (grant.pattern !== GLOBAL_PATTERN) continue;
    for (const permission of grant.permissions) {
      if (isGlobalPermission(permission)) permissions.add(permission);
    }
  }
  return permissions;
}

/**
 * Returns the permissions an identity holds on one repository: those of every
 * grant whose pattern matches the name, with `pull` added by
 * `pull-uncertified`, and all of them for `admin`. A name that no token may
 * carry gets none.
 */
export function repositoryPermissions(grants: readonly Grant[], groups: readonly string[], repository: string): Set<RepositoryPermission> {
  const permissions = new Set<RepositoryPermission>();
  if (!isGrantableName(repository)) return permissions;

  if (globalPermissions(grants, groups).has('admin')) return new Set(REPOSITORY_PERMISSIONS);

  for (const grant of grants) {
    if (!matchesPattern(grant.pattern, repository)) continue;
    for (const permission of grant.permissions) {
      if (isRepositoryPermission(permission)) permissions.add(permission);
    }
  }
  if (permissions.has('pull-uncertified')) permissions.add('pull');
  return permissions;
}

/**
 * Returns the access to put in a token: for each requested resource, the
 * requested actions that the grants and groups allow. Resources with no
 * allowed action are left out, because asking for more than one may have is
 * no error in the token specification.
 *
 * The repository actions are pull, push and delete, each allowed by the
 * permission of the same name (pull also by `pull-uncertified`). `*` is
 * allowed only when all three are. `registry:catalog:*` needs `admin`.
 * `pull-uncertified` itself is never a token action, so the pull gate calls
 * `repositoryPermissions` for it.
 */
export function grantedActions(grants: readonly Grant[], groups: readonly string[], requested: readonly AccessEntry[]): AccessEntry[] {
  const granted: AccessEntry[] = [];
  const isAdmin = globalPermissions(grants, groups).has('admin');

  for (const entry of requested) {
    if (entry.type === 'registry') {
      if (entry.name === CATALOG_NAME && entry.actions.includes('*') && isAdmin) {
        granted.push({ type: 'registry', name: CATALOG_NAME, actions: ['*'] });
      }
      continue;
    }

    const permissions = repositoryPermissions(grants, groups, entry.name);
    const allowed = normalizeRepositoryActions(entry.actions).filter((action) => {
      if (action === '*') return permissions.has('pull') && permissions.has('push') && permissions.has('delete');
      return permissions.has(action);
    });
    if (allowed.length > 0) granted.push({ type: 'repository', name: entry.name, actions: allowed });
  }
  return granted;
}
