/** Certification state of one manifest digest in one repository. */
export type CertificationState = 'pending' | 'certified' | 'rejected' | 'revoked' | 'expired';

/** One reviewer's decision for one role. */
export interface DecisionRecord {
  id: number;
  role: string;
  decision: 'approve' | 'reject';
  comment: string;
  evidence: unknown;
  actor: string;
  createdAt: Date;
}

export interface RevocationRecord {
  id: number;
  reason: string;
  actor: string;
  createdAt: Date;
}

/** Roles the policy requires of a digest, and the state its decisions reached. */
export interface CertificationOutcome {
  state: CertificationState;
  requiredRoles: string[];
  /** Required roles whose latest counted decision is not an approval. */
  missingRoles: string[];
  /** Required roles whose latest counted decision is a rejection. */
  rejectedRoles: string[];
  /** When the last required approval arrived, for a certified or expired digest. */
  certifiedAt: Date | null;
  /** When the certification lapses; null when it never does or is not certified. */
  expiresAt: Date | null;
}

/**
 * Computes the state from the decisions and revocations of one digest.
 *
 * Only the latest decision per role counts, and only decisions made after the
 * latest revocation. A rejection by a required role makes the digest
 * rejected. Without a rejection, a required role that has not approved keeps
 * it pending, or revoked when a revocation exists. When every required role
 * approved, it is certified until its earliest counted approval is older than
 * the policy's validity, and expired after that.
 */
export function computeCertificationState(
  requiredRoles: readonly string[],
  validitySeconds: number | null,
  decisions: readonly DecisionRecord[],
  revocations: readonly RevocationRecord[],
  now: Date,
): CertificationOutcome {
  const lastRevocation = revocations.reduce<Date | null>((latest, revocation) => (latest === null || revocation.createdAt > latest ? revocation.createdAt : latest), null);

  const latestByRole = new Map<string, DecisionRecord>();
  for (const decision of decisions) {
    if (lastRevocation !== null && decision.createdAt <= lastRevocation) continue;
    const current = latestByRole.get(decision.role);
    if (current === undefined || decision.id > current.id) latestByRole.set(decision.role, decision);
  }

  const required = [...requiredRoles];
  const rejectedRoles = required.filter((role) => latestByRole.get(role)?.decision === 'reject');
  const missingRoles = required.filter((role) => latestByRole.get(role)?.decision !== 'approve');
  const base = { requiredRoles: required, missingRoles, rejectedRoles };

  if (rejectedRoles.length > 0) return { ...base, state: 'rejected', certifiedAt: null, expiresAt: null };
  if (missingRoles.length > 0) return { ...base, state: lastRevocation !== null ? 'revoked' : 'pending', certifiedAt: null, expiresAt: null };

  const approvalTimes = required.map((role) => (latestByRole.get(role) as DecisionRecord).createdAt.getTime());
  const certifiedAt = new Date(Math.max(...approvalTimes));
  const expiresAt = validitySeconds === null ? null : new Date(Math.min(...approvalTimes) + validitySeconds * 1000);
  if (expiresAt !== null && expiresAt <= now) return { ...base, state: 'expired', certifiedAt, expiresAt };
  return { ...base, state: 'certified', certifiedAt, expiresAt };
}
