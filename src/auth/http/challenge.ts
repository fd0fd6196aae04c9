import { formatScope, type AccessEntry } from '../scopes.js';

/** Parameters of a Bearer challenge. */
export interface ChallengeParameters {
  realm: string;
  service: string;
  scopes: readonly AccessEntry[];
  error?: 'invalid_token' | 'insufficient_scope';
}

function quoted(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/**
 * Builds a `WWW-Authenticate: Bearer` value as the Docker token
 * authentication specification describes it: realm, service, the scopes
 * separated by spaces, and an error when a token was rejected or lacked scope.
 */
export function bearerChallenge(parameters: ChallengeParameters): string {
  const parts = [`realm=${quoted(parameters.realm)}`, `service=${quoted(parameters.service)}`];
  if (parameters.scopes.length > 0) parts.push(`scope=${quoted(parameters.scopes.map(formatScope).join(' '))}`);
  if (parameters.error) parts.push(`error=${quoted(parameters.error)}`);
  return `Bearer ${parts.join(',')}`;
}
