/** The kinds of things account management creates, changes and looks up. */
export type AccountResource = 'user' | 'robot' | 'group' | 'member' | 'grant';

/** The reason a change conflicts with the stored state. */
export type AccountConflictReason = 'exists' | 'built_in' | 'last_administrator';

/** One invalid field of an input, with the rule it breaks. */
export interface InputProblem {
  /** Name of the input field, such as `username` or `permissions`. */
  field: string;
  message: string;
}

/** Maximum length of a user-supplied value quoted in an error message, so that a huge input cannot inflate messages and logs. */
const MAX_QUOTED_LENGTH = 100;

/** Quotes a user-supplied value for a message, shortened to MAX_QUOTED_LENGTH characters. */
export function quoted(value: string): string {
  const shortened = value.length > MAX_QUOTED_LENGTH ? `${value.slice(0, MAX_QUOTED_LENGTH)}…` : value;
  return `"${shortened}"`;
}

/** A user, robot, group, membership or grant that does not exist. */
export class AccountNotFoundError extends Error {
  constructor(
    readonly resource: AccountResource,
    /** The name or id that was looked up, as the caller gave it. */
    readonly key: string,
    message = `${resource} ${quoted(key)} not found`,
  ) {
    super(message);
    this.name = 'AccountNotFoundError';
  }
}

/** A change that the stored state forbids: a duplicate name, a built-in group, or the loss of the last administrator. */
export class AccountConflictError extends Error {
  constructor(
    readonly resource: AccountResource,
    readonly key: string,
    readonly reason: AccountConflictReason,
    message: string,
  ) {
    super(message);
    this.name = 'AccountConflictError';
  }
}

/** Input that breaks a rule of account management; `problems` lists every broken rule at once. */
export class InvalidAccountInputError extends Error {
  constructor(readonly problems: readonly InputProblem[]) {
    super(problems.map((problem) => `${problem.field}: ${problem.message}`).join('; '));
    this.name = 'InvalidAccountInputError';
  }
}
