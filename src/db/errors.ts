/** PostgreSQL errors the domain reacts to, translated from SQLSTATE codes at the database boundary. */
export type DatabaseErrorKind = 'unique_violation' | 'foreign_key_violation' | 'check_violation' | 'lock_not_available' | 'serialization_failure' | 'statement_timeout';

const SQLSTATE_KINDS: Record<string, DatabaseErrorKind> = {
  '23505': 'unique_violation',
  '23503': 'foreign_key_violation',
  '23514': 'check_violation',
  '55P03': 'lock_not_available',
  '40001': 'serialization_failure',
  '40P01': 'serialization_failure',
  '57014': 'statement_timeout',
};

/** Returns the kind of a PostgreSQL error, or null for any other error. */
export function databaseErrorKind(error: unknown): DatabaseErrorKind | null {
  if (typeof error !== 'object' || error === null) return null;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? (SQLSTATE_KINDS[code] ?? null) : null;
}

/** Returns the constraint name of a PostgreSQL constraint violation, if any. */
export function violatedConstraint(error: unknown): string | null {
  if (typeof error !== 'object' || error === null) return null;
  const constraint = (error as { constraint?: unknown }).constraint;
  return typeof constraint === 'string' ? constraint : null;
}
