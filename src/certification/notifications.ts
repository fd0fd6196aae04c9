import type { Knex } from 'knex';

/**
 * PostgreSQL channel that every decision, revocation and policy change is
 * announced on, so that other replicas can drop what they cached. The payload
 * is JSON: `{"kind":"decision"|"revocation","repository","digest"}` or
 * `{"kind":"policy","policy"}`.
 */
export const CERTIFICATION_CHANNEL = 'portcullis_certification';

/** A change that CERTIFICATION_CHANNEL announces. */
export type CertificationChange = { kind: 'decision' | 'revocation'; repository: string; digest: string } | { kind: 'policy'; policy: string };

/** Announces a change on CERTIFICATION_CHANNEL; PostgreSQL delivers it only when the transaction commits. */
export async function notify(trx: Knex.Transaction, change: CertificationChange): Promise<void> {
  await trx.raw('select pg_notify(?, ?)', [CERTIFICATION_CHANNEL, JSON.stringify(change)]);
}
