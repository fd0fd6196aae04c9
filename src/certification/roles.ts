import type { Principal } from '../auth/identity-store.js';
import { globalPermissions, type GlobalPermission } from '../auth/permissions.js';

/** Roles that certify images; each has the global permission `certify:<role>`. */
export const CERTIFICATION_ROLES = ['it', 'security', 'qa'] as const;

export type CertificationRole = (typeof CERTIFICATION_ROLES)[number];

/** Returns whether a string names a certification role. */
export function isCertificationRole(role: string): role is CertificationRole {
  return (CERTIFICATION_ROLES as readonly string[]).includes(role);
}

/** Returns the global permission that lets a principal decide for a role. */
export function certifyPermission(role: CertificationRole): GlobalPermission {
  return `certify:${role}`;
}

/** Returns the roles a principal may decide for, in the order of CERTIFICATION_ROLES. */
export function rolesOf(principal: Principal): CertificationRole[] {
  const permissions = globalPermissions(principal.grants, principal.groups);
  return CERTIFICATION_ROLES.filter((role) => permissions.has(certifyPermission(role)));
}

/** Returns whether a principal has the global `admin` permission. */
export function isAdmin(principal: Principal): boolean {
  return globalPermissions(principal.grants, principal.groups).has('admin');
}
