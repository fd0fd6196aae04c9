import type { Knex } from 'knex';
import type { RegistryEventSink } from '../audit/registry-events.js';
import type { Principal } from '../auth/identity-store.js';
import { patternProblem } from '../auth/patterns.js';
import { CertificationConflictError, CertificationNotFoundError, InvalidCertificationInputError, quote, type InputProblem } from '../certification/errors.js';
import { CERTIFICATION_ROLES, isCertificationRole } from '../certification/roles.js';
import { notify } from '../certification/notifications.js';
import type { RequestContext } from '../context.js';
import { databaseErrorKind, violatedConstraint } from '../db/errors.js';
import type { PolicyMode } from './policies.js';

/** The policy every repository falls back to; it can be changed but not deleted, and its pattern stays `**`. */
export const DEFAULT_POLICY_NAME = 'default';

/** Pattern of the default policy: every repository. */
export const DEFAULT_POLICY_PATTERN = '**';

/** Policy names: lowercase, starting with a letter, at most 64 characters. */
export const POLICY_NAME_PATTERN = /^[a-z][a-z0-9._-]{0,63}$/;

/** Largest validity, in seconds: the limit of the 32-bit integer column, about 68 years. */
export const MAX_VALIDITY_SECONDS = 2_147_483_647;

/** Most groups a policy may let pull uncertified images. */
export const MAX_UNCERTIFIED_GROUPS = 100;

const POLICY_MODES: readonly PolicyMode[] = ['enforce', 'dry-run'];

/** A certification policy as policy management shows it. */
export interface PolicyView {
  name: string;
  pattern: string;
  requiredRoles: string[];
  validitySeconds: number | null;
  uncertifiedGroups: string[];
  mode: PolicyMode;
  createdAt: Date;
  updatedAt: Date;
}

/** A new policy as the caller sends it; the service checks every field. */
export interface PolicyInput {
  name: string;
  pattern: string;
  requiredRoles: string[];
  validitySeconds?: number | null;
  uncertifiedGroups?: string[];
  mode?: string;
}

/** Fields of a policy to change; absent fields stay as they are. */
export type PolicyChanges = Partial<Omit<PolicyInput, 'name'>>;

interface PolicyRow {
  name: string;
  pattern: string;
  required_roles: string[];
  validity_seconds: number | null;
  uncertified_groups: string[];
  mode: PolicyMode;
  created_at: Date;
  updated_at: Date;
}

const POLICY_COLUMNS = ['name', 'pattern', 'required_roles', 'validity_seconds', 'uncertified_groups', 'mode', 'created_at', 'updated_at'];

function viewOf(row: PolicyRow): PolicyView {
  return {
    name: row.name,
    pattern: row.pattern,
    requiredRoles: row.required_roles,
    validitySeconds: row.validity_seconds,
    uncertifiedGroups: row.uncertified_groups,
    mode: row.mode,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function duplicatesOf(values: readonly string[]): string[] {
  return [...new Set(values.filter((value, index) => values.indexOf(value) !== index))];
}

function fieldProblems(fields: PolicyChanges): InputProblem[] {
  const problems: InputProblem[] = [];

  if (fields.pattern !== undefined) {
    const problem = patternProblem(fields.pattern);
    if (problem !== undefined) problems.push({ field: 'pattern', message: `invalid pattern ${quote(fields.pattern)}: ${problem}` });
  }

  if (fields.requiredRoles !== undefined) {
    const unknown = fields.requiredRoles.filter((role) => !isCertificationRole(role));
    if (fields.requiredRoles.length === 0) problems.push({ field: 'requiredRoles', message: `expected at least one of ${CERTIFICATION_ROLES.join(', ')}` });
    if (unknown.length > 0) problems.push({ field: 'requiredRoles', message: `unknown roles ${unknown.map(quote).join(', ')}: use ${CERTIFICATION_ROLES.join(', ')}` });
    const duplicates = duplicatesOf(fields.requiredRoles);
    if (duplicates.length > 0) problems.push({ field: 'requiredRoles', message: `roles listed twice: ${duplicates.map(quote).join(', ')}` });
  }

  const validity = fields.validitySeconds;
  if (validity !== undefined && validity !== null && (!Number.isInteger(validity) || validity < 1 || validity > MAX_VALIDITY_SECONDS)) {
    problems.push({ field: 'validitySeconds', message: `expected null or an integer from 1 to ${MAX_VALIDITY_SECONDS}` });
  }

  if (fields.uncertifiedGroups !== undefined) {
    if (fields.uncertifiedGroups.length > MAX_UNCERTIFIED_GROUPS) problems.push({ field: 'uncertifiedGroups', message: `expected at most ${MAX_UNCERTIFIED_GROUPS} groups` });
    const duplicates = duplicatesOf(fields.uncertifiedGroups);
    if (duplicates.length > 0) problems.push({ field: 'uncertifiedGroups', message: `groups listed twice: ${duplicates.map(quote).join(', ')}` });
  }

  if (fields.mode !== undefined && !(POLICY_MODES as readonly string[]).includes(fields.mode)) {
    problems.push({ field: 'mode', message: `unknown mode ${quote(fields.mode)}: use enforce or dry-run` });
  }
  return problems;
}

function policyNotFound(name: string): CertificationNotFoundError {
  return new CertificationNotFoundError('policy', name, `policy ${quote(name)} not found`);
}

/** Translates a unique violation of the policies table into a conflict naming the taken name or pattern. */
function translateConflict(error: unknown, name: string, pattern: string | undefined): unknown {
  if (databaseErrorKind(error) !== 'unique_violation') return error;
  if (violatedConstraint(error)?.includes('pattern') && pattern !== undefined) {
    return new CertificationConflictError('policy', pattern, 'exists', `another policy has the pattern ${quote(pattern)} already: change that policy instead`);
  }
  return new CertificationConflictError('policy', name, 'exists', `a policy named ${quote(name)} exists already`);
}

/**
 * Creates, lists, shows, changes and deletes certification policies. Every
 * change is recorded on the audit trail as `policy.change` and announced to
 * other replicas in the transaction that makes it. Callers check that the
 * actor has `admin`.
 */
export class PolicyService {
  constructor(private readonly deps: { db: Knex; events: RegistryEventSink }) {}

  /** Returns every policy, ordered by name. */
  async list(): Promise<PolicyView[]> {
    const rows: PolicyRow[] = await this.deps.db('policies').orderBy('name').select(POLICY_COLUMNS);
    return rows.map(viewOf);
  }

  /** Returns one policy; throws CertificationNotFoundError when none has the name. */
  async get(name: string): Promise<PolicyView> {
    const row: PolicyRow | undefined = await this.deps.db('policies').where({ name }).first(POLICY_COLUMNS);
    if (!row) throw policyNotFound(name);
    return viewOf(row);
  }

  /** Creates a policy. Its name and pattern must be unused, and each uncertified group must exist. */
  async create(input: PolicyInput, actor: Principal, context: RequestContext): Promise<PolicyView> {
    const problems = fieldProblems(input);
    if (!POLICY_NAME_PATTERN.test(input.name)) problems.unshift({ field: 'name', message: `invalid policy name ${quote(input.name)}: use 1 to 64 lowercase letters, digits, ".", "_" or "-", starting with a letter` });
    if (problems.length > 0) throw new InvalidCertificationInputError(problems);

    const { db, events } = this.deps;
    try {
      return await db.transaction(async (trx) => {
        await this.checkGroups(trx, input.uncertifiedGroups ?? []);
        const [row] = (await trx('policies')
          .insert({
            name: input.name,
            pattern: input.pattern,
            required_roles: input.requiredRoles,
            validity_seconds: input.validitySeconds ?? null,
            uncertified_groups: input.uncertifiedGroups ?? [],
            mode: input.mode ?? 'enforce',
          })
          .returning(POLICY_COLUMNS)) as PolicyRow[];
        await events.record(context, { action: 'policy.change', policy: input.name, change: 'create', by: actor.subject }, trx);
        await notify(trx, { kind: 'policy', policy: input.name });
        return viewOf(row as PolicyRow);
      });
    } catch (error) {
      throw translateConflict(error, input.name, input.pattern);
    }
  }

  /** Changes the given fields of a policy. The default policy keeps its pattern `**`. */
  async update(name: string, changes: PolicyChanges, actor: Principal, context: RequestContext): Promise<PolicyView> {
    const problems = fieldProblems(changes);
    if (Object.values(changes).every((value) => value === undefined)) problems.push({ field: 'body', message: 'expected at least one field to change' });
    if (name === DEFAULT_POLICY_NAME && changes.pattern !== undefined && changes.pattern !== DEFAULT_POLICY_PATTERN) {
      problems.push({ field: 'pattern', message: `the default policy keeps the pattern "${DEFAULT_POLICY_PATTERN}", so that every repository has a policy` });
    }
    if (problems.length > 0) throw new InvalidCertificationInputError(problems);

    const { db, events } = this.deps;
    try {
      return await db.transaction(async (trx) => {
        const existing = await trx('policies').where({ name }).forUpdate().first('id');
        if (!existing) throw policyNotFound(name);
        if (changes.uncertifiedGroups !== undefined) await this.checkGroups(trx, changes.uncertifiedGroups);

        const [row] = (await trx('policies')
          .where({ name })
          .update({
            ...(changes.pattern !== undefined ? { pattern: changes.pattern } : {}),
            ...(changes.requiredRoles !== undefined ? { required_roles: changes.requiredRoles } : {}),
            ...(changes.validitySeconds !== undefined ? { validity_seconds: changes.validitySeconds } : {}),
            ...(changes.uncertifiedGroups !== undefined ? { uncertified_groups: changes.uncertifiedGroups } : {}),
            ...(changes.mode !== undefined ? { mode: changes.mode } : {}),
            updated_at: trx.fn.now(),
          })
          .returning(POLICY_COLUMNS)) as PolicyRow[];
        await events.record(context, { action: 'policy.change', policy: name, change: 'update', by: actor.subject }, trx);
        await notify(trx, { kind: 'policy', policy: name });
        return viewOf(row as PolicyRow);
      });
    } catch (error) {
      throw translateConflict(error, name, changes.pattern);
    }
  }

  /** Deletes a policy; the repositories it matched fall back to the next most specific one. The default policy cannot be deleted. */
  async delete(name: string, actor: Principal, context: RequestContext): Promise<void> {
    if (name === DEFAULT_POLICY_NAME) {
      throw new CertificationConflictError('policy', name, 'default_policy', 'the default policy cannot be deleted, because every repository needs a policy: change it instead');
    }
    const { db, events } = this.deps;
    await db.transaction(async (trx) => {
      const deleted = await trx('policies').where({ name }).delete();
      if (deleted === 0) throw policyNotFound(name);
      await events.record(context, { action: 'policy.change', policy: name, change: 'delete', by: actor.subject }, trx);
      await notify(trx, { kind: 'policy', policy: name });
    });
  }

  /** Throws invalid input naming every group that does not exist. */
  private async checkGroups(trx: Knex.Transaction, groups: readonly string[]): Promise<void> {
    if (groups.length === 0) return;
    const rows: Array<{ name: string }> = await trx('groups').whereIn('name', groups).forShare().select('name');
    const found = new Set(rows.map((row) => row.name));
    const missing = groups.filter((group) => !found.has(group));
    if (missing.length > 0) {
      throw new InvalidCertificationInputError([{ field: 'uncertifiedGroups', message: `groups not found: ${missing.map(quote).join(', ')}; create them first` }]);
    }
  }
}
