import type { Knex } from 'knex';
import type { RequestContext } from '../context.js';

/** Registry changes and reads, logins, token issues and account changes that the audit trail records. */
export type RegistryEvent =
  | { action: 'blob.push'; repository: string; digest: string; size: number }
  | { action: 'blob.mount'; repository: string; from: string; digest: string }
  | { action: 'blob.delete'; repository: string; digest: string }
  | { action: 'blob.pull'; repository: string; digest: string; size: number; certification?: PullCertification }
  | { action: 'manifest.push'; repository: string; digest: string; mediaType: string; size: number; tag?: string; previousDigest?: string | null }
  | { action: 'manifest.pull'; repository: string; digest: string; mediaType: string; size: number; tag?: string; certification?: PullCertification }
  | { action: 'manifest.head'; repository: string; digest: string; mediaType: string; tag: string; certification?: PullCertification }
  | { action: 'manifest.delete'; repository: string; digest: string }
  | { action: 'tag.delete'; repository: string; tag: string; digest: string }
  | { action: 'pull.denied'; repository: string; kind: 'manifest' | 'blob'; digest: string | null; tag?: string; reason: string; state?: string; policy?: string }
  | { action: 'auth.login'; subject: string; success: boolean; method: 'basic' | 'token'; reason?: string }
  /** `refresh` is true when the response carries a refresh token; `grant` is how the caller asked. */
  | { action: 'auth.token'; subject: string; tokenId: string; access: Array<{ type: string; name: string; actions: string[] }>; refresh: boolean; grant: 'password' | 'refresh_token' | 'anonymous' }
  | { action: 'account.change'; change: string; target: string; by: string }
  | { action: 'certification.decision'; repository: string; digest: string; role: string; decision: 'approve' | 'reject'; actor: string; state: string; comment: string }
  | { action: 'certification.revocation'; repository: string; digest: string; reason: string; actor: string }
  | { action: 'policy.change'; policy: string; change: 'create' | 'update' | 'delete'; by: string }
  | { action: 'import.change'; importId: string; source: string; target: string; status: string; by: string }
  | { action: 'upstream.change'; upstream: string; change: 'create' | 'update' | 'delete'; by: string }
  | { action: 'scan.waiver'; repository: string | null; digest: string; findingId: string; reason: string; expiresAt: string | null; by: string }
  | { action: 'scan.rescan'; repository: string | null; digest: string; by: string };

/** Every action of a registry event, for checks at run time. */
export const REGISTRY_EVENT_ACTIONS = [
  'blob.push',
  'blob.mount',
  'blob.delete',
  'blob.pull',
  'manifest.push',
  'manifest.pull',
  'manifest.head',
  'manifest.delete',
  'tag.delete',
  'pull.denied',
  'auth.login',
  'auth.token',
  'account.change',
  'certification.decision',
  'certification.revocation',
  'policy.change',
  'import.change',
  'upstream.change',
  'scan.waiver',
  'scan.rescan',
] as const satisfies ReadonlyArray<RegistryEvent['action']>;

// Fails to compile when an action of RegistryEvent is missing from the list.
const everyActionListed: Exclude<RegistryEvent['action'], (typeof REGISTRY_EVENT_ACTIONS)[number]> extends never ? true : never = true;
void everyActionListed;

/** Every action on the audit trail: registry events and the trail's own events. */
export const AUDIT_ACTIONS: readonly string[] = [...REGISTRY_EVENT_ACTIONS, 'gateway.start', 'audit.archive', 'audit.dropped'];

/**
 * Grounds of an allowed pull: the content's certification state and policy,
 * and whether it was served uncertified through `pull-uncertified`, a
 * policy's uncertified groups, or a dry-run policy.
 */
export interface PullCertification {
  state: string;
  policy: string;
  uncertified: boolean;
  via?: 'pull-uncertified' | 'uncertified-group' | 'dry-run' | 'attachment' | 'index';
  /** The certified manifest that allowed the pull when it is not the pulled content: an index that lists it, an attachment's subject, or a manifest that references the pulled blob. */
  certifiedDigest?: string;
  /** Set when the policy would deny the pull and allows it only because it is in dry-run mode. */
  wouldDeny?: { reason: string; policy: string };
}

/**
 * Receives registry events. Changes are reported inside the transaction that
 * makes them, so a recorder that writes to the database commits or rolls back
 * with the change itself. Reads are reported with a null transaction before
 * the response is sent.
 */
export interface RegistryEventSink {
  record(context: RequestContext, event: RegistryEvent, transaction: Knex.Transaction | null): Promise<void>;
}

/** Writes each event to the request's log, notable ones at info and the rest at debug. The audit trail writes to it too. */
export const logEventSink: RegistryEventSink = {
  record: async (context, event) => {
    // Decisions an operator must be able to find at the default level: denials, dry-run would-denies, failed logins and changes.
    const notable = event.action === 'pull.denied' || ((event.action === 'manifest.pull' || event.action === 'blob.pull') && event.certification?.wouldDeny !== undefined) || (event.action === 'auth.login' && !event.success) || event.action.endsWith('.change') || event.action.startsWith('certification.');
    if (notable) context.logger.info({ event }, 'registry event');
    else context.logger.debug({ event }, 'registry event');
  },
};
