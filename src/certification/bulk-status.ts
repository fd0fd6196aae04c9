import type { Knex } from 'knex';
import type { Policy } from '../policy/policies.js';
import { computeCertificationState, type CertificationOutcome, type DecisionRecord, type RevocationRecord } from './state.js';

interface DecisionRow {
  id: number;
  digest: string;
  role: string;
  decision: 'approve' | 'reject';
  actor: string;
  created_at: Date;
}

interface RevocationRow {
  id: number;
  digest: string;
  reason: string;
  actor: string;
  created_at: Date;
}

/**
 * Computes the certification state of several digests of one repository
 * under one policy, with two queries whatever the number of digests. A digest
 * without any decision is pending. Comments and evidence are not loaded,
 * because the state does not depend on them.
 */
export async function certificationStates(db: Knex, repositoryId: number, policy: Policy, digests: readonly string[], now: Date = new Date()): Promise<Map<string, CertificationOutcome>> {
  const unique = [...new Set(digests)];
  const states = new Map<string, CertificationOutcome>();
  if (unique.length === 0) return states;

  const [decisionRows, revocationRows]: [DecisionRow[], RevocationRow[]] = await Promise.all([
    db('certification_decisions').where('repository_id', repositoryId).whereIn('digest', unique).select('id', 'digest', 'role', 'decision', 'actor', 'created_at'),
    db('certification_revocations').where('repository_id', repositoryId).whereIn('digest', unique).select('id', 'digest', 'reason', 'actor', 'created_at'),
  ]);

  const decisions = new Map<string, DecisionRecord[]>();
  for (const row of decisionRows) {
    const record: DecisionRecord = { id: Number(row.id), role: row.role, decision: row.decision, comment: '', evidence: null, actor: row.actor, createdAt: row.created_at };
    const list = decisions.get(row.digest) ?? [];
    list.push(record);
    decisions.set(row.digest, list);
  }
  const revocations = new Map<string, RevocationRecord[]>();
  for (const row of revocationRows) {
    const record: RevocationRecord = { id: Number(row.id), reason: row.reason, actor: row.actor, createdAt: row.created_at };
    const list = revocations.get(row.digest) ?? [];
    list.push(record);
    revocations.set(row.digest, list);
  }

  for (const digest of unique) {
    states.set(digest, computeCertificationState(policy.requiredRoles, policy.validitySeconds, decisions.get(digest) ?? [], revocations.get(digest) ?? [], now));
  }
  return states;
}
