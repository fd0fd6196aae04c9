import type { InputProblem } from '../auth/account-errors.js';

export type { InputProblem } from '../auth/account-errors.js';

/** The things certification and policy management look up. */
export type CertificationResource = 'repository' | 'manifest' | 'tag' | 'policy' | 'group';

/** Reason a certification or policy change conflicts with the stored state; the `scan_…` reasons refuse a Security approval until the secret scan allows it. */
export type CertificationConflictReason = 'exists' | 'default_policy' | 'nothing_to_revoke' | 'scan_unfinished' | 'scan_failed' | 'scan_findings';

/** Maximum length of a value quoted in a message, so a huge input cannot inflate messages and logs. */
const MAX_QUOTED_LENGTH = 100;

/** Quotes a caller-supplied value for a message, shortened to MAX_QUOTED_LENGTH characters. */
export function quote(value: string): string {
  return `"${value.length > MAX_QUOTED_LENGTH ? `${value.slice(0, MAX_QUOTED_LENGTH)}…` : value}"`;
}

/** Input that breaks a rule of certification or policy management; `problems` names every invalid field. */
export class InvalidCertificationInputError extends Error {
  constructor(readonly problems: readonly InputProblem[]) {
    super(problems.map((problem) => `${problem.field}: ${problem.message}`).join('; '));
    this.name = 'InvalidCertificationInputError';
  }
}

/** The caller lacks the permission an operation needs; `required` lists the permissions, any one of which would do. */
export class CertificationPermissionError extends Error {
  constructor(
    readonly required: readonly string[],
    message: string,
  ) {
    super(message);
    this.name = 'CertificationPermissionError';
  }
}

/** A repository, manifest, tag, policy or group that does not exist. */
export class CertificationNotFoundError extends Error {
  constructor(
    readonly resource: CertificationResource,
    /** The name, digest or tag that was looked up, as the caller gave it. */
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = 'CertificationNotFoundError';
  }
}

/** A change that the stored state forbids. */
export class CertificationConflictError extends Error {
  constructor(
    readonly resource: CertificationResource,
    readonly key: string,
    readonly reason: CertificationConflictReason,
    message: string,
  ) {
    super(message);
    this.name = 'CertificationConflictError';
  }
}
