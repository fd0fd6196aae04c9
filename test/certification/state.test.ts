import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { computeCertificationState, type CertificationState, type DecisionRecord, type RevocationRecord } from '../../src/certification/state.js';

const ALL_ROLES = ['it', 'security', 'qa'];
const NOW = new Date('2030-01-01T12:00:00Z');

/** Returns the time `minutes` before NOW. */
function ago(minutes: number): Date {
  return new Date(NOW.getTime() - minutes * 60_000);
}

let nextId = 1;

function decision(role: string, verdict: 'approve' | 'reject', minutesAgo: number): DecisionRecord {
  return { id: nextId++, role, decision: verdict, comment: '', evidence: {}, actor: `${role}-reviewer`, createdAt: ago(minutesAgo) };
}

function revocation(minutesAgo: number): RevocationRecord {
  return { id: nextId++, reason: 'test', actor: 'security-reviewer', createdAt: ago(minutesAgo) };
}

interface Case {
  name: string;
  requiredRoles?: string[];
  validitySeconds?: number | null;
  decisions: DecisionRecord[];
  revocations?: RevocationRecord[];
  state: CertificationState;
  missingRoles: string[];
  rejectedRoles?: string[];
}

const cases: Case[] = [
  { name: 'no decisions is pending', decisions: [], state: 'pending', missingRoles: ALL_ROLES },
  { name: 'one approval of three is pending', decisions: [decision('security', 'approve', 30)], state: 'pending', missingRoles: ['it', 'qa'] },
  {
    name: 'every required approval is certified',
    decisions: [decision('it', 'approve', 30), decision('security', 'approve', 20), decision('qa', 'approve', 10)],
    state: 'certified',
    missingRoles: [],
  },
  {
    name: 'a rejection overrides the other approvals',
    decisions: [decision('it', 'approve', 30), decision('security', 'reject', 20), decision('qa', 'approve', 10)],
    state: 'rejected',
    missingRoles: ['security'],
    rejectedRoles: ['security'],
  },
  {
    name: 'a rejection after an approval of the same role is rejected',
    decisions: [decision('it', 'approve', 30), decision('security', 'approve', 20), decision('qa', 'approve', 10), decision('qa', 'reject', 5)],
    state: 'rejected',
    missingRoles: ['qa'],
    rejectedRoles: ['qa'],
  },
  {
    name: 'an approval after a rejection of the same role replaces it',
    decisions: [decision('it', 'approve', 30), decision('security', 'reject', 25), decision('security', 'approve', 20), decision('qa', 'approve', 10)],
    state: 'certified',
    missingRoles: [],
  },
  {
    name: 'a revocation after certification is revoked',
    decisions: [decision('it', 'approve', 30), decision('security', 'approve', 20), decision('qa', 'approve', 10)],
    revocations: [revocation(5)],
    state: 'revoked',
    missingRoles: ALL_ROLES,
  },
  {
    name: 'a partial re-approval after a revocation stays revoked',
    decisions: [decision('it', 'approve', 30), decision('security', 'approve', 20), decision('qa', 'approve', 10), decision('it', 'approve', 3)],
    revocations: [revocation(5)],
    state: 'revoked',
    missingRoles: ['security', 'qa'],
  },
  {
    name: 're-approval by every role after a revocation is certified',
    decisions: [decision('it', 'approve', 30), decision('security', 'approve', 20), decision('qa', 'approve', 10), decision('it', 'approve', 3), decision('security', 'approve', 2), decision('qa', 'approve', 1)],
    revocations: [revocation(5)],
    state: 'certified',
    missingRoles: [],
  },
  {
    name: 'a rejection before a revocation no longer counts',
    decisions: [decision('security', 'reject', 20)],
    revocations: [revocation(5)],
    state: 'revoked',
    missingRoles: ALL_ROLES,
  },
  {
    name: 'a decision at the instant of the revocation does not count',
    decisions: [decision('it', 'approve', 5)],
    revocations: [revocation(5)],
    state: 'revoked',
    missingRoles: ALL_ROLES,
  },
  {
    name: 'only the latest of several revocations matters',
    decisions: [decision('it', 'approve', 8), decision('security', 'approve', 7), decision('qa', 'approve', 6)],
    revocations: [revocation(9), revocation(10)],
    state: 'certified',
    missingRoles: [],
  },
  {
    name: 'a rejection by a role the policy does not require is ignored',
    requiredRoles: ['it', 'security'],
    decisions: [decision('it', 'approve', 30), decision('security', 'approve', 20), decision('qa', 'reject', 10)],
    state: 'certified',
    missingRoles: [],
  },
  {
    name: 'an approval by a role the policy does not require does not help',
    requiredRoles: ['security'],
    decisions: [decision('it', 'approve', 30), decision('qa', 'approve', 10)],
    state: 'pending',
    missingRoles: ['security'],
  },
  {
    name: 'certification older than the validity is expired',
    validitySeconds: 3600,
    decisions: [decision('it', 'approve', 120), decision('security', 'approve', 20), decision('qa', 'approve', 10)],
    state: 'expired',
    missingRoles: [],
  },
  {
    name: 'certification within the validity is certified',
    validitySeconds: 3600,
    decisions: [decision('it', 'approve', 50), decision('security', 'approve', 20), decision('qa', 'approve', 10)],
    state: 'certified',
    missingRoles: [],
  },
  {
    name: 'fresh approvals after expiry certify again',
    validitySeconds: 3600,
    decisions: [decision('it', 'approve', 120), decision('security', 'approve', 110), decision('qa', 'approve', 100), decision('it', 'approve', 3), decision('security', 'approve', 2), decision('qa', 'approve', 1)],
    state: 'certified',
    missingRoles: [],
  },
];

describe('computeCertificationState', () => {
  for (const entry of cases) {
    test(entry.name, () => {
      const outcome = computeCertificationState(entry.requiredRoles ?? ALL_ROLES, entry.validitySeconds ?? null, entry.decisions, entry.revocations ?? [], NOW);
      assert.equal(outcome.state, entry.state, 'state');
      assert.deepEqual(outcome.missingRoles, entry.missingRoles, 'missing roles');
      assert.deepEqual(outcome.rejectedRoles, entry.rejectedRoles ?? [], 'rejected roles');
    });
  }

  test('certified digest expires at the earliest approval plus the validity', () => {
    const outcome = computeCertificationState(ALL_ROLES, 3600, [decision('it', 'approve', 50), decision('security', 'approve', 20), decision('qa', 'approve', 10)], [], NOW);
    assert.deepEqual(outcome.expiresAt, new Date(ago(50).getTime() + 3600_000));
  });

  test('certified digest was certified at the last approval', () => {
    const outcome = computeCertificationState(ALL_ROLES, null, [decision('it', 'approve', 50), decision('security', 'approve', 20), decision('qa', 'approve', 10)], [], NOW);
    assert.deepEqual(outcome.certifiedAt, ago(10));
  });

  test('certification without validity never expires', () => {
    const outcome = computeCertificationState(ALL_ROLES, null, [decision('it', 'approve', 50_000), decision('security', 'approve', 20), decision('qa', 'approve', 10)], [], NOW);
    assert.equal(outcome.expiresAt, null);
  });

  test('pending digest has no expiry', () => {
    const outcome = computeCertificationState(ALL_ROLES, 3600, [decision('it', 'approve', 10)], [], NOW);
    assert.equal(outcome.expiresAt, null);
  });

  test('expiry exactly now is expired', () => {
    const outcome = computeCertificationState(ALL_ROLES, 600, [decision('it', 'approve', 10), decision('security', 'approve', 5), decision('qa', 'approve', 1)], [], NOW);
    assert.equal(outcome.state, 'expired');
  });

  test('latest decision by id, not list order', () => {
    const approve = decision('security', 'approve', 20);
    const reject = decision('security', 'reject', 10);
    const outcome = computeCertificationState(['security'], null, [reject, approve], [], NOW);
    assert.equal(outcome.state, 'rejected');
  });
});
