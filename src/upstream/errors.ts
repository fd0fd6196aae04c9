import type { InputProblem } from '../auth/account-errors.js';

/** An upstream or import request with invalid fields. Each problem names its field. */
export class ImportInputError extends Error {
  constructor(readonly problems: InputProblem[]) {
    super(problems.map((problem) => `${problem.field}: ${problem.message}`).join('; '));
    this.name = 'ImportInputError';
  }
}

/** Reason an import may not contact an upstream. */
export type UpstreamRefusal = 'not_allowlisted' | 'insecure_http_not_allowed';

/** An import whose upstream is not on the allowlist, or that requests plain HTTP where only HTTPS is allowed. */
export class UpstreamNotAllowedError extends Error {
  constructor(
    readonly host: string,
    readonly reason: UpstreamRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamNotAllowedError';
  }
}

/** An upstream or import that does not exist. */
export class ImportResourceNotFoundError extends Error {
  constructor(
    readonly resource: 'upstream' | 'import',
    readonly key: string,
  ) {
    super(`${resource} ${JSON.stringify(key.slice(0, 200))} not found`);
    this.name = 'ImportResourceNotFoundError';
  }
}

/** An upstream host that is already on the allowlist. */
export class UpstreamExistsError extends Error {
  constructor(readonly host: string) {
    super(`upstream ${host} is already on the allowlist: delete it first to change its settings`);
    this.name = 'UpstreamExistsError';
  }
}

/** Kind of failure of a request to an upstream registry. */
export type UpstreamFailure = 'unauthorized' | 'not_found' | 'digest_mismatch' | 'invalid_response' | 'redirect' | 'http_status' | 'network' | 'timeout';

/**
 * A failed request to an upstream registry. `retryable` is true when trying
 * again later can succeed, as after network failures, timeouts, 429 and 5xx.
 * It is false for a missing image, rejected credentials or content that
 * fails verification. The message never contains credentials or tokens.
 */
export class UpstreamRequestError extends Error {
  constructor(
    readonly failure: UpstreamFailure,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'UpstreamRequestError';
  }
}

/** A caller that may not import into the target repository. */
export class ImportPermissionError extends Error {
  constructor(
    readonly subject: string,
    readonly repository: string,
  ) {
    super(`${subject} may not import into ${repository}: importing needs the admin permission or an import grant on the repository`);
    this.name = 'ImportPermissionError';
  }
}

/** An import that cannot succeed however often it runs, such as one whose upstream left the allowlist. */
export class ImportAbortedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImportAbortedError';
  }
}
