import type { Knex } from 'knex';

/** Whether a policy blocks pulls that it would deny, or only records them. */
export type PolicyMode = 'enforce' | 'dry-run';

/** A certification policy: which roles must approve images of the repositories its pattern matches. */
export interface Policy {
  id: number;
  name: string;
  /** Repository pattern in the grant syntax (`team-a/*`, `base/**`); the default policy has `**`. */
  pattern: string;
  requiredRoles: string[];
  /** Seconds a certification stays valid after its earliest counted approval; null means forever. */
  validitySeconds: number | null;
  /** Groups whose members may pull uncertified images of the matched repositories. */
  uncertifiedGroups: string[];
  mode: PolicyMode;
  updatedAt: Date;
}

interface PolicyRow {
  id: number;
  name: string;
  pattern: string;
  required_roles: string[];
  validity_seconds: number | null;
  uncertified_groups: string[];
  mode: PolicyMode;
  updated_at: Date;
}

/**
 * Returns how specific a pattern is, as a tuple to compare left to right: an
 * exact name beats any wildcard, then more literal components, then `*` over
 * `**`, then more components.
 */
export function patternSpecificity(pattern: string): [number, number, number, number] {
  const components = pattern.split('/');
  const literal = components.filter((component) => component !== '*' && component !== '**').length;
  const exact = literal === components.length ? 1 : 0;
  const noDoubleStar = components.includes('**') ? 0 : 1;
  return [exact, literal, noDoubleStar, components.length];
}

function compareSpecificity(left: string, right: string): number {
  const a = patternSpecificity(left);
  const b = patternSpecificity(right);
  for (let index = 0; index < a.length; index += 1) {
    const difference = (a[index] as number) - (b[index] as number);
    if (difference !== 0) return difference;
  }
  return 0;
}

/** Returns the most specific policy whose pattern matches the repository, or null when none does. */
export function selectPolicy(policies: readonly Policy[], repository: string, matches: (pattern: string, name: string) => boolean): Policy | null {
  let best: Policy | null = null;
  for (const policy of policies) {
    if (!matches(policy.pattern, repository)) continue;
    if (best === null || compareSpecificity(policy.pattern, best.pattern) > 0) best = policy;
  }
  return best;
}

/** Loads every policy. */
export async function loadPolicies(db: Knex): Promise<Policy[]> {
  const rows: PolicyRow[] = await db('policies').select('*');
  return rows.map((row) => ({
    id: Number(row.id),
    name: row.name,
    pattern: row.pattern,
    requiredRoles: row.required_roles,
    validitySeconds: row.validity_seconds,
    uncertifiedGroups: row.uncertified_groups,
    mode: row.mode,
    updatedAt: row.updated_at,
  }));
}
