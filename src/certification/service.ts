import type { Knex } from 'knex';
import type { RegistryEventSink } from '../audit/registry-events.js';
import type { Principal } from '../auth/identity-store.js';
import type { RequestContext } from '../context.js';
import { isValidName, isValidTag, looksLikeDigest, parseDigest } from '../registry/reference.js';
import { isRegistryError } from '../errors.js';
import { CertificationConflictError, CertificationNotFoundError, CertificationPermissionError, InvalidCertificationInputError, quote, type InputProblem } from './errors.js';
import { notify } from './notifications.js';
import { listQueue, MAX_QUEUE_PAGE_SIZE, type QueuePage, type QueuePageRequest } from './queue.js';
import { CERTIFICATION_ROLES, certifyPermission, isAdmin, isCertificationRole, rolesOf, type CertificationRole } from './roles.js';
import type { DecisionRecord, RevocationRecord } from './state.js';
import { certificationStatus, policyFor, type CertificationStatus } from './status.js';
import { scanGateProblem, scanSummary } from '../scan/summary.js';

/** Maximum length of a decision's comment, in characters. */
export const MAX_COMMENT_LENGTH = 4096;

/** Maximum length of a revocation's reason, in characters. */
export const MAX_REASON_LENGTH = 4096;

/** Maximum size of a decision's evidence, in bytes of its JSON text. */
export const MAX_EVIDENCE_BYTES = 32 * 1024;

/** A reviewer's decision as the caller sends it; the service checks every field. */
export interface DecisionInput {
  repository: string;
  /** A manifest digest; a tag is invalid, because certification is bound to content. */
  digest: string;
  role: string;
  decision: string;
  comment?: string;
  /** A JSON object, such as links to test reports or scan results. */
  evidence?: unknown;
}

/** A revocation as the caller sends it. */
export interface RevocationInput {
  repository: string;
  digest: string;
  reason: string;
}

/** A stored decision with the digest it is about. */
export interface StoredDecision extends DecisionRecord {
  repository: string;
  digest: string;
}

/** A stored revocation with the digest it is about. */
export interface StoredRevocation extends RevocationRecord {
  repository: string;
  digest: string;
}

/** A digest's status as reviewers see it, with the tag it was looked up by, if any. */
export interface StatusView extends CertificationStatus {
  tag: string | null;
}

/** One entry of a digest's certification history. */
export type HistoryEntry = ({ kind: 'decision' } & DecisionRecord) | ({ kind: 'revocation' } & RevocationRecord);

/** Every decision and revocation of a digest, oldest first. */
export interface CertificationHistory {
  repository: string;
  digest: string;
  entries: HistoryEntry[];
}

interface DecisionRow {
  id: number;
  role: string;
  decision: 'approve' | 'reject';
  comment: string;
  evidence: unknown;
  actor: string;
  created_at: Date;
}

interface RevocationRow {
  id: number;
  reason: string;
  actor: string;
  created_at: Date;
}

export interface CertificationServiceDeps {
  db: Knex;
  events: RegistryEventSink;
}

function repositoryProblem(repository: string): InputProblem | null {
  if (isValidName(repository)) return null;
  return { field: 'repository', message: `invalid repository name ${quote(repository)}: use lowercase path components separated by "/", at most 255 characters` };
}

/** Throws InvalidCertificationInputError naming `repository` unless the name follows the OCI name grammar. */
export function checkRepositoryName(repository: string): void {
  throwProblems([repositoryProblem(repository)]);
}

function digestProblem(digest: string, field = 'digest'): InputProblem | null {
  if (!looksLikeDigest(digest)) {
    return { field, message: `${quote(digest)} is not a digest. Certification is bound to a manifest digest such as sha256:<64 hex digits>, never to a tag, so look the tag up with the status endpoint first` };
  }
  try {
    parseDigest(digest);
    return null;
  } catch (error) {
    if (isRegistryError(error, 'DIGEST_INVALID')) return { field, message: error.message };
    throw error;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function evidenceProblem(evidence: unknown): InputProblem | null {
  if (!isPlainObject(evidence)) return { field: 'evidence', message: 'expected a JSON object' };
  const size = Buffer.byteLength(JSON.stringify(evidence));
  if (size > MAX_EVIDENCE_BYTES) return { field: 'evidence', message: `the evidence is ${size} bytes of JSON; the limit is ${MAX_EVIDENCE_BYTES}` };
  return null;
}

function throwProblems(problems: ReadonlyArray<InputProblem | null>): void {
  const found = problems.filter((problem): problem is InputProblem => problem !== null);
  if (found.length > 0) throw new InvalidCertificationInputError(found);
}

function decisionOf(row: DecisionRow): DecisionRecord {
  return { id: Number(row.id), role: row.role, decision: row.decision, comment: row.comment, evidence: row.evidence, actor: row.actor, createdAt: row.created_at };
}

function revocationOf(row: RevocationRow): RevocationRecord {
  return { id: Number(row.id), reason: row.reason, actor: row.actor, createdAt: row.created_at };
}

/** Returns the decisions that still count: those made after the latest revocation, by the rule of computeCertificationState. */
export function decisionsSinceRevocation(status: Pick<CertificationStatus, 'decisions' | 'revocations'>): DecisionRecord[] {
  const last = status.revocations.reduce<Date | null>((latest, revocation) => (latest === null || revocation.createdAt > latest ? revocation.createdAt : latest), null);
  return status.decisions.filter((decision) => last === null || decision.createdAt > last);
}

/**
 * Throws unless the principal may read the certification status and history
 * of a repository: with pull on it (`holdsPull`, which the caller computes
 * from its grants), any `certify:*` permission, or `admin`.
 */
export function assertMayReadCertification(principal: Principal, repository: string, holdsPull: boolean): void {
  if (holdsPull || rolesOf(principal).length > 0 || isAdmin(principal)) return;
  throw new CertificationPermissionError(
    ['pull', ...CERTIFICATION_ROLES.map(certifyPermission), 'admin'],
    `${principal.subject} may not read the certification of ${repository}: that needs pull on the repository, a certify permission or admin`,
  );
}

/** Throws unless the principal may read the review queue of a role: with `certify:<role>` or `admin`. */
export function assertMayReadQueue(principal: Principal, role: CertificationRole): void {
  if (rolesOf(principal).includes(role) || isAdmin(principal)) return;
  throw new CertificationPermissionError(
    [certifyPermission(role), 'admin'],
    `${principal.subject} may not read the ${role} review queue: that needs ${certifyPermission(role)} (membership in the ${role} group) or admin`,
  );
}

/**
 * Certification of manifest digests: reviewers' decisions, revocations, the
 * state they add up to under the repository's policy, the review queue and
 * the full history. Every change is recorded on the audit trail in the
 * transaction that makes it.
 */
export class CertificationService {
  constructor(private readonly deps: CertificationServiceDeps) {}

  /**
   * Stores a reviewer's approval or rejection of a digest for one role and
   * returns it with the digest's new status.
   *
   * The actor must hold `certify:<role>`. One person may decide for several
   * roles when they hold each permission, and each decision records the role
   * and the actor. The role must be one that the repository's policy
   * requires, and the digest must be a manifest in the repository. A
   * Security approval needs a finished secret scan with every finding
   * waived; otherwise it is a conflict. Rejections are always accepted.
   */
  async decide(input: DecisionInput, actor: Principal, context: RequestContext): Promise<{ decision: StoredDecision; status: CertificationStatus }> {
    const comment = input.comment ?? '';
    const evidence = input.evidence ?? {};
    throwProblems([
      repositoryProblem(input.repository),
      digestProblem(input.digest),
      isCertificationRole(input.role) ? null : { field: 'role', message: `unknown role ${quote(input.role)}: use one of ${CERTIFICATION_ROLES.join(', ')}` },
      input.decision === 'approve' || input.decision === 'reject' ? null : { field: 'decision', message: `unknown decision ${quote(input.decision)}: use approve or reject` },
      comment.length > MAX_COMMENT_LENGTH ? { field: 'comment', message: `the comment is ${comment.length} characters; the limit is ${MAX_COMMENT_LENGTH}` } : null,
      evidenceProblem(evidence),
    ]);
    const role = input.role as CertificationRole;
    const verdict = input.decision as 'approve' | 'reject';
    const { repository, digest } = input;

    if (!rolesOf(actor).includes(role)) {
      throw new CertificationPermissionError(
        [certifyPermission(role)],
        `${actor.subject} lacks ${certifyPermission(role)}, which deciding for the ${role} role needs: ask an administrator to add the account to the ${role} group`,
      );
    }

    const policy = await policyFor(this.deps.db, repository);
    if (!policy.requiredRoles.includes(role)) {
      throw new InvalidCertificationInputError([
        { field: 'role', message: `the policy "${policy.name}" of ${repository} requires the roles ${policy.requiredRoles.join(', ')}, and ${role} is not one of them` },
      ]);
    }

    return this.deps.db.transaction(async (trx) => {
      const repositoryId = await this.lockManifest(trx, repository, digest);
      if (role === 'security' && verdict === 'approve') {
        const problem = scanGateProblem(repository, digest, await scanSummary(trx, repositoryId, digest));
        if (problem) throw new CertificationConflictError('manifest', digest, problem.reason, problem.message);
      }
      const [row] = (await trx('certification_decisions')
        .insert({ repository_id: repositoryId, digest, role, decision: verdict, comment, evidence: JSON.stringify(evidence), actor: actor.subject, created_at: decisionTime(trx, repositoryId, digest) })
        .returning(['id', 'role', 'decision', 'comment', 'evidence', 'actor', 'created_at'])) as DecisionRow[];
      const status = await certificationStatus(trx, repositoryId, repository, digest);

      await this.deps.events.record(context, { action: 'certification.decision', repository, digest, role, decision: verdict, actor: actor.subject, state: status.state, comment }, trx);
      await notify(trx, { kind: 'decision', repository, digest });
      return { decision: { ...decisionOf(row as DecisionRow), repository, digest }, status };
    });
  }

  /**
   * Revokes every decision made so far on a digest: the digest needs a new
   * decision from each required role before it is certified again.
   *
   * Any reviewer (`certify:it`, `certify:security` or `certify:qa`) may
   * revoke, whatever role made the decisions, because stopping an unsafe
   * image must not wait for one team. `admin` may revoke too. Revoking a
   * digest with no decision since the last revocation is a conflict.
   */
  async revoke(input: RevocationInput, actor: Principal, context: RequestContext): Promise<{ revocation: StoredRevocation; status: CertificationStatus }> {
    const reason = input.reason.trim();
    throwProblems([
      repositoryProblem(input.repository),
      digestProblem(input.digest),
      reason.length === 0 ? { field: 'reason', message: 'a revocation needs a reason' } : null,
      reason.length > MAX_REASON_LENGTH ? { field: 'reason', message: `the reason is ${reason.length} characters; the limit is ${MAX_REASON_LENGTH}` } : null,
    ]);
    const { repository, digest } = input;

    if (rolesOf(actor).length === 0 && !isAdmin(actor)) {
      throw new CertificationPermissionError(
        [...CERTIFICATION_ROLES.map(certifyPermission), 'admin'],
        `${actor.subject} may not revoke certifications: that needs certify:it, certify:security, certify:qa or admin`,
      );
    }

    return this.deps.db.transaction(async (trx) => {
      const repositoryId = await this.lockManifest(trx, repository, digest);
      const before = await certificationStatus(trx, repositoryId, repository, digest);
      if (decisionsSinceRevocation(before).length === 0) {
        throw new CertificationConflictError('manifest', digest, 'nothing_to_revoke', `${repository}@${digest} has no decision since its last revocation, so there is nothing to revoke`);
      }

      const [row] = (await trx('certification_revocations')
        .insert({ repository_id: repositoryId, digest, reason, actor: actor.subject, created_at: revocationTime(trx, repositoryId, digest) })
        .returning(['id', 'reason', 'actor', 'created_at'])) as RevocationRow[];
      const status = await certificationStatus(trx, repositoryId, repository, digest);

      await this.deps.events.record(context, { action: 'certification.revocation', repository, digest, reason, actor: actor.subject }, trx);
      await notify(trx, { kind: 'revocation', repository, digest });
      return { revocation: { ...revocationOf(row as RevocationRow), repository, digest }, status };
    });
  }

  /** Returns the status of a manifest given by tag or digest, under the policy that applies to its repository now. */
  async status(repository: string, reference: string): Promise<StatusView> {
    const isDigest = looksLikeDigest(reference);
    throwProblems([
      repositoryProblem(repository),
      isDigest ? digestProblem(reference, 'reference') : null,
      !isDigest && !isValidTag(reference) ? { field: 'reference', message: `invalid tag ${quote(reference)}: use up to 128 characters from [a-zA-Z0-9_.-], not starting with "." or "-", or a digest` } : null,
    ]);

    const { db } = this.deps;
    const repositoryId = await this.findRepository(db, repository);
    if (isDigest) {
      const manifest = await db('manifests').where({ repository_id: repositoryId, digest: reference }).first('id');
      if (!manifest) throw manifestNotFound(repository, reference);
      return { ...(await certificationStatus(db, repositoryId, repository, reference)), tag: null };
    }

    const tagged: { digest: string } | undefined = await db('tags as t').join('manifests as m', 'm.id', 't.manifest_id').where({ 't.repository_id': repositoryId, 't.name': reference }).first('m.digest');
    if (!tagged) throw new CertificationNotFoundError('tag', reference, `tag ${quote(reference)} not found in repository ${repository}`);
    return { ...(await certificationStatus(db, repositoryId, repository, tagged.digest)), tag: reference };
  }

  /**
   * Returns the images that wait for a decision by a role, oldest push first.
   * The caller checks permission with assertMayReadQueue.
   */
  async queue(role: string, page: QueuePageRequest): Promise<QueuePage> {
    throwProblems([
      isCertificationRole(role) ? null : { field: 'role', message: `unknown role ${quote(role)}: use one of ${CERTIFICATION_ROLES.join(', ')}` },
      Number.isInteger(page.limit) && page.limit >= 1 && page.limit <= MAX_QUEUE_PAGE_SIZE ? null : { field: 'limit', message: `expected an integer from 1 to ${MAX_QUEUE_PAGE_SIZE}` },
    ]);
    return listQueue(this.deps.db, role as CertificationRole, page);
  }

  /**
   * Returns every decision and revocation of a digest in the order they were
   * made. The history outlives the manifest: a deleted manifest with
   * decisions still has one.
   */
  async history(repository: string, digest: string): Promise<CertificationHistory> {
    throwProblems([repositoryProblem(repository), digestProblem(digest)]);
    const { db } = this.deps;
    const repositoryId = await this.findRepository(db, repository);

    const rows: Array<{ kind: 'decision' | 'revocation'; id: number; role: string | null; decision: 'approve' | 'reject' | null; comment: string | null; evidence: unknown; reason: string | null; actor: string; created_at: Date }> = (
      await db.raw(
        `select 'decision' as kind, id, role, decision, comment, evidence, null as reason, actor, created_at
           from certification_decisions where repository_id = ? and digest = ?
         union all
         select 'revocation' as kind, id, null, null, null, null, reason, actor, created_at
           from certification_revocations where repository_id = ? and digest = ?
         order by created_at, kind, id`,
        [repositoryId, digest, repositoryId, digest],
      )
    ).rows;
    if (rows.length === 0) {
      const manifest = await db('manifests').where({ repository_id: repositoryId, digest }).first('id');
      if (!manifest) throw manifestNotFound(repository, digest);
    }

    const entries = rows.map((row): HistoryEntry => {
      if (row.kind === 'revocation') return { kind: 'revocation', ...revocationOf({ id: row.id, reason: row.reason ?? '', actor: row.actor, created_at: row.created_at }) };
      return { kind: 'decision', ...decisionOf({ id: row.id, role: row.role ?? '', decision: row.decision ?? 'reject', comment: row.comment ?? '', evidence: row.evidence, actor: row.actor, created_at: row.created_at }) };
    });
    return { repository, digest, entries };
  }

  private async findRepository(db: Knex, repository: string): Promise<number> {
    const row = await db('repositories').where({ name: repository }).first('id');
    if (!row) throw new CertificationNotFoundError('repository', repository, `repository ${repository} not found`);
    return Number(row.id);
  }

  /**
   * Returns the repository id after locking the manifest row, so that
   * decisions and revocations of one digest happen one after the other and
   * the manifest cannot be deleted while one is stored.
   */
  private async lockManifest(trx: Knex.Transaction, repository: string, digest: string): Promise<number> {
    const repositoryId = await this.findRepository(trx, repository);
    const manifest = await trx('manifests').where({ repository_id: repositoryId, digest }).forNoKeyUpdate().first('id');
    if (!manifest) throw manifestNotFound(repository, digest);
    return repositoryId;
  }
}

/**
 * Returns the time to store a decision at: clock_timestamp(), read after the
 * manifest lock so that the entries of one digest are timed in the order they
 * commit, and at least 2 ms after the digest's latest revocation. node-pg
 * turns timestamps into a Date by truncating to whole milliseconds, with
 * floating-point error of up to one more, and computeCertificationState
 * counts only decisions strictly later than the latest revocation. Without
 * the margin, an approval stored within 2 ms of a revocation would not count.
 */
function decisionTime(trx: Knex.Transaction, repositoryId: number, digest: string): Knex.Raw {
  return trx.raw(
    `greatest(clock_timestamp(), (select max(created_at) + interval '2 milliseconds' from certification_revocations where repository_id = ? and digest = ?))`,
    [repositoryId, digest],
  );
}

/**
 * Returns the time to store a revocation at: clock_timestamp(), but no
 * earlier than the digest's latest decision, which decisionTime may have
 * placed up to 2 ms ahead. computeCertificationState drops decisions at or
 * before the latest revocation, so every earlier decision stops counting.
 */
function revocationTime(trx: Knex.Transaction, repositoryId: number, digest: string): Knex.Raw {
  return trx.raw(`greatest(clock_timestamp(), (select max(created_at) from certification_decisions where repository_id = ? and digest = ?))`, [repositoryId, digest]);
}

function manifestNotFound(repository: string, digest: string): CertificationNotFoundError {
  return new CertificationNotFoundError('manifest', digest, `manifest ${digest} not found in repository ${repository}`);
}
