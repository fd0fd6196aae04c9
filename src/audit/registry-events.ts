import type { Knex } from 'knex';
import type { RequestContext } from '../context.js';

/** Registry changes and reads, logins, token issues and account changes that the audit trail records. */
export type RegistryEvent =
  | { action: 'blob.push'; repository: string; digest: string; size: number }
  | { action: 'blob.mount'; repository: string; from: string; digest: string }
  | { action: 'blob.delete'; repository: string; digest: string }
  | { action: 'blob.pull'; repository: string; digest: string; size: number }
  | { action: 'manifest.push'; repository: string; digest: string; mediaType: string; size: number; tag?: string; previousDigest?: string | null }
  | { action: 'manifest.pull'; repository: string; digest: string; mediaType: string; size: number; tag?: string }
  | { action: 'manifest.delete'; repository: string; digest: string }
  | { action: 'tag.delete'; repository: string; tag: string; digest: string }
  | { action: 'pull.denied'; repository: string; digest: string; reason: string }
  | { action: 'auth.login'; subject: string; success: boolean; method: 'basic' | 'token'; reason?: string }
  | { action: 'auth.token'; subject: string; tokenId: string; access: Array<{ type: string; name: string; actions: string[] }>; refresh: boolean }
  | { action: 'account.change'; change: string; target: string; by: string };

/**
 * Receives registry events. Changes are reported inside the transaction that
 * makes them, so a recorder that writes to the database commits or rolls back
 * with the change itself; reads are reported with a null transaction before
 * the response is sent.
 */
export interface RegistryEventSink {
  record(context: RequestContext, event: RegistryEvent, transaction: Knex.Transaction | null): Promise<void>;
}

/** Writes each event to the request's log at debug level; the audit trail replaces it. */
export const logEventSink: RegistryEventSink = {
  record: async (context, event) => {
    context.logger.debug({ event }, 'registry event');
  },
};
