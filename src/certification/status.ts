import type { Knex } from 'knex';
import { matchesPattern } from '../auth/patterns.js';
import { loadPolicies, selectPolicy, type Policy } from '../policy/policies.js';
import { scanSummary, type ScanSummary } from '../scan/summary.js';
import { computeCertificationState, type CertificationOutcome, type DecisionRecord, type RevocationRecord } from './state.js';

/** A digest's certification state with the policy that applies and the full record behind it. */
export interface CertificationStatus extends CertificationOutcome {
  repository: string;
  digest: string;
  policy: Policy;
  decisions: DecisionRecord[];
  revocations: RevocationRecord[];
  /** The secret scan of the digest, or of every image manifest under an index. */
  scan: ScanSummary;
}

/** Returns the policy that applies to a repository: the most specific match, which the default policy `**` guarantees. */
export async function policyFor(db: Knex, repository: string): Promise<Policy> {
  const policy = selectPolicy(await loadPolicies(db), repository, matchesPattern);
  if (policy === null) throw new Error(`no certification policy matches ${repository}; the default policy "**" is missing`);
  return policy;
}

/** Loads the decisions and revocations of a digest and computes its state under the repository's policy. */
export async function certificationStatus(db: Knex, repositoryId: number, repository: string, digest: string, now: Date = new Date()): Promise<CertificationStatus> {
  const policy = await policyFor(db, repository);
  const decisionRows: Array<{ id: number; role: string; decision: 'approve' | 'reject'; comment: string; evidence: unknown; actor: string; created_at: Date }> = await db('certification_decisions')
    .where({ repository_id: repositoryId, digest })
    .orderBy('id')
    .select('id', 'role', 'decision', 'comment', 'evidence', 'actor', 'created_at');
  const revocationRows: Array<{ id: number; reason: string; actor: string; created_at: Date }> = await db('certification_revocations')
    .where({ repository_id: repositoryId, digest })
    .orderBy('id')
    .select('id', 'reason', 'actor', 'created_at');

  const decisions = decisionRows.map((row) => ({ id: Number(row.id), role: row.role, decision: row.decision, comment: row.comment, evidence: row.evidence, actor: row.actor, createdAt: row.created_at }));
  const revocations = revocationRows.map((row) => ({ id: Number(row.id), reason: row.reason, actor: row.actor, createdAt: row.created_at }));
  const outcome = computeCertificationState(policy.requiredRoles, policy.validitySeconds, decisions, revocations, now);
  return { ...outcome, repository, digest, policy, decisions, revocations, scan: await scanSummary(db, repositoryId, digest) };
}
