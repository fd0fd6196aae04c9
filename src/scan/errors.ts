import type { InputProblem } from '../auth/account-errors.js';

/** Input to the scan API that breaks a rule; `problems` names every invalid field. */
export class ScanInputError extends Error {
  constructor(readonly problems: readonly InputProblem[]) {
    super(problems.map((problem) => `${problem.field}: ${problem.message}`).join('; '));
    this.name = 'ScanInputError';
  }
}

/** The caller lacks the permission an operation needs; `required` lists the permissions, any one of which would do. */
export class ScanPermissionError extends Error {
  constructor(
    readonly required: readonly string[],
    message: string,
  ) {
    super(message);
    this.name = 'ScanPermissionError';
  }
}

/** A repository, manifest or finding that does not exist. */
export class ScanNotFoundError extends Error {
  constructor(
    readonly resource: 'repository' | 'manifest' | 'finding',
    /** The name, digest or id that was looked up, as the caller gave it. */
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = 'ScanNotFoundError';
  }
}

/** A rescan of a scan that a run has claimed right now. */
export class ScanConflictError extends Error {
  constructor(
    readonly digest: string,
    readonly reason: 'scan_running',
    message: string,
  ) {
    super(message);
    this.name = 'ScanConflictError';
  }
}
