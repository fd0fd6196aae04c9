import { MAX_NAME_LENGTH } from '../registry/reference.js';
import { isGrantableName, namesOtherRegistry } from './scopes.js';

/**
 * Repository patterns name the repositories a grant covers. A pattern is a
 * list of path components separated by '/'. Each component is one of:
 *
 * - a literal name component, which matches itself (`team-a`, `app`);
 * - `*`, which matches exactly one component (`team-a/*` matches `team-a/app`
 *   but neither `team-a` nor `team-a/app/cache`);
 * - `**`, last component only, which matches one or more components
 *   (`base/**` matches `base/alpine` and `base/alpine/3`, not `base`).
 *
 * `*` alone matches every single-component name, and `**` alone matches every
 * name. Wildcards inside a component, such as `team-*`, are invalid.
 */

/** A name component of the OCI name grammar. */
const COMPONENT_PATTERN = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;

/** An invalid repository pattern. The message names the rule it breaks. */
export class InvalidPatternError extends Error {
  constructor(
    readonly pattern: string,
    reason: string,
  ) {
    super(`invalid repository pattern "${pattern.slice(0, MAX_NAME_LENGTH + 1)}": ${reason}`);
    this.name = 'InvalidPatternError';
  }
}

/** Returns why a pattern is invalid, or undefined when it is valid. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'the pattern is empty';
  if (pattern.length > MAX_NAME_LENGTH) return `the pattern is longer than ${MAX_NAME_LENGTH} characters`;

  const components = pattern.split('/');
  for (const [index, component] of components.entries()) {
    if (component === '*') continue;
    if (component === '**') {
      if (index !== components.length - 1) return '"**" is allowed only as the last component';
      continue;
    }
    if (component.includes('*')) return 'a wildcard must be a whole component ("*" or "**")';
    if (!COMPONENT_PATTERN.test(component)) {
      return 'each component must be "*", "**" or lowercase letters and digits with the separators ".", "_", "__", "-" between them';
    }
  }

  const first = components[0] as string;
  if (components.length > 1 && namesOtherRegistry(first)) {
    return `the first component "${first}" names another registry host, and images of other registries are never granted`;
  }
  return undefined;
}

/** Returns whether a string is a valid repository pattern. */
export function isValidPattern(pattern: string): boolean {
  return patternProblem(pattern) === undefined;
}

/** Returns the pattern, or throws InvalidPatternError with the rule it breaks. */
export function validatePattern(pattern: string): string {
  const problem = patternProblem(pattern);
  if (problem !== undefined) throw new InvalidPatternError(pattern, problem);
  return pattern;
}

/**
 * Returns whether a repository name matches a pattern. An invalid pattern
 * matches nothing, and neither does a name that no token may carry.
 */
export function matchesPattern(pattern: string, name: string): boolean {
  if (!isValidPattern(pattern) || !isGrantableName(name)) return false;

  const patternComponents = pattern.split('/');
  const nameComponents = name.split('/');
  const last = patternComponents.length - 1;

  if (patternComponents[last] === '**') {
    // `**` needs at least one component of its own.
    if (nameComponents.length <= last) return false;
    return patternComponents.slice(0, last).every((component, index) => componentMatches(component, nameComponents[index] as string));
  }

  if (nameComponents.length !== patternComponents.length) return false;
  return patternComponents.every((component, index) => componentMatches(component, nameComponents[index] as string));
}

function componentMatches(patternComponent: string, nameComponent: string): boolean {
  return patternComponent === '*' || patternComponent === nameComponent;
}
