import type { Knex } from 'knex';
import type { RequestContext } from '../context.js';
import { ANONYMOUS_SUBJECT } from '../auth/authenticator.js';
import { RegistryError } from '../errors.js';
import type { AuditEventInput, DetailValue } from './chain.js';
import type { PullCertification, RegistryEvent, RegistryEventSink } from './registry-events.js';
import { emptyInput } from './store.js';
import type { AuditWriter } from './writer.js';

export interface AuditSinkOptions {
  /** Name of this gateway process, stored on every event. */
  replica: string;
  /**
   * When true, a pull whose events cannot be written is served anyway, and
   * the events are kept for a later write. This covers the pull, its denial,
   * and the login or token issue before it. Every other request fails closed.
   */
  failOpenPulls: boolean;
}

/** Events that a pull request records: the pull or its denial, and the login or token issue that precedes it. */
function isPullRelated(event: RegistryEvent): boolean {
  return (
    event.action === 'manifest.pull' ||
    event.action === 'manifest.head' ||
    event.action === 'blob.pull' ||
    event.action === 'pull.denied' ||
    event.action === 'auth.login' ||
    event.action === 'auth.token'
  );
}

function pullFacts(certification: PullCertification | undefined): Pick<AuditEventInput, 'decision' | 'reason' | 'policy' | 'certificationState'> & { details: Record<string, DetailValue> } {
  if (!certification) return { decision: 'allowed', reason: null, policy: null, certificationState: null, details: {} };
  const details: Record<string, DetailValue> = { uncertified: certification.uncertified };
  if (certification.via !== undefined) details.via = certification.via;
  if (certification.certifiedDigest !== undefined) details.certifiedDigest = certification.certifiedDigest;
  if (certification.wouldDeny) {
    return { decision: 'would-deny', reason: certification.wouldDeny.reason, policy: certification.wouldDeny.policy, certificationState: certification.state, details };
  }
  let reason = 'certified';
  if (certification.uncertified) reason = `served uncertified through ${certification.via ?? 'an exception'}`;
  else if (certification.certifiedDigest !== undefined) reason = `certified through ${certification.certifiedDigest}`;
  return { decision: 'allowed', reason, policy: certification.policy, certificationState: certification.state, details };
}

/**
 * Names the actor of a login or token request after the account it names,
 * because such a request is made before the caller is authenticated.
 */
function actorOfSubject(input: AuditEventInput, subject: string): Pick<AuditEventInput, 'actorKind' | 'actorSubject'> {
  if (input.actorKind !== 'anonymous') return { actorKind: input.actorKind, actorSubject: input.actorSubject };
  return { actorKind: subject.startsWith('robot$') ? 'robot' : 'user', actorSubject: subject };
}

/** Turns a registry event and the request it belongs to into the facts of an audit event. */
export function auditInputOf(context: RequestContext, event: RegistryEvent, replica: string): AuditEventInput {
  const identity = context.identity;
  const input: AuditEventInput = {
    ...emptyInput(event.action, replica),
    actorKind: context.system !== undefined ? 'system' : identity.kind,
    actorSubject: context.system ?? (identity.kind === 'anonymous' ? null : identity.subject),
    tokenId: identity.kind === 'anonymous' ? null : (identity.tokenId ?? null),
    clientAddress: context.clientAddress === '' ? null : context.clientAddress,
    userAgent: context.userAgent === '' ? null : context.userAgent,
    requestId: context.requestId,
  };

  switch (event.action) {
    case 'blob.push':
      return { ...input, repository: event.repository, digest: event.digest, bytes: event.size };
    case 'blob.mount':
      return { ...input, repository: event.repository, digest: event.digest, details: { from: event.from } };
    case 'blob.delete':
    case 'manifest.delete':
      return { ...input, repository: event.repository, digest: event.digest };
    case 'blob.pull': {
      const facts = pullFacts(event.certification);
      return { ...input, ...facts, repository: event.repository, digest: event.digest, bytes: event.size };
    }
    case 'manifest.pull': {
      const facts = pullFacts(event.certification);
      return { ...input, ...facts, repository: event.repository, reference: event.tag ?? null, digest: event.digest, mediaType: event.mediaType, bytes: event.size };
    }
    case 'manifest.head': {
      const facts = pullFacts(event.certification);
      return { ...input, ...facts, repository: event.repository, reference: event.tag, digest: event.digest, mediaType: event.mediaType };
    }
    case 'manifest.push':
      return {
        ...input,
        repository: event.repository,
        reference: event.tag ?? null,
        digest: event.digest,
        mediaType: event.mediaType,
        bytes: event.size,
        details: event.tag !== undefined ? { previousDigest: event.previousDigest ?? null } : {},
      };
    case 'tag.delete':
      return { ...input, repository: event.repository, reference: event.tag, digest: event.digest };
    case 'pull.denied':
      return {
        ...input,
        repository: event.repository,
        reference: event.tag ?? null,
        digest: event.digest,
        decision: 'denied',
        reason: event.reason,
        policy: event.policy ?? null,
        certificationState: event.state ?? null,
        details: { kind: event.kind },
      };
    case 'auth.login':
      return {
        ...input,
        ...(event.subject === ANONYMOUS_SUBJECT ? {} : actorOfSubject(input, event.subject)),
        reason: event.reason ?? null,
        details: { subject: event.subject, success: event.success, method: event.method },
      };
    case 'auth.token':
      return {
        ...input,
        ...(event.subject === ANONYMOUS_SUBJECT ? {} : actorOfSubject(input, event.subject)),
        tokenId: event.tokenId,
        details: { subject: event.subject, grant: event.grant, refresh: event.refresh, access: event.access.map((entry) => ({ type: entry.type, name: entry.name, actions: [...entry.actions] })) },
      };
    case 'account.change':
      return { ...input, details: { change: event.change, target: event.target, by: event.by } };
    case 'certification.decision':
      return { ...input, repository: event.repository, digest: event.digest, certificationState: event.state, reason: event.comment === '' ? null : event.comment, details: { role: event.role, decision: event.decision, by: event.actor } };
    case 'certification.revocation':
      return { ...input, repository: event.repository, digest: event.digest, certificationState: 'revoked', reason: event.reason, details: { by: event.actor } };
    case 'policy.change':
      return { ...input, policy: event.policy, details: { change: event.change, by: event.by } };
    case 'import.change':
      return { ...input, details: { importId: event.importId, source: event.source, target: event.target, status: event.status, by: event.by } };
    case 'upstream.change':
      return { ...input, details: { upstream: event.upstream, change: event.change, by: event.by } };
    case 'scan.waiver':
      return { ...input, repository: event.repository, digest: event.digest, reason: event.reason, details: { findingId: event.findingId, expiresAt: event.expiresAt, by: event.by } };
    case 'scan.rescan':
      return { ...input, repository: event.repository, digest: event.digest, details: { by: event.by } };
  }
}

/**
 * Records registry events on the audit trail. A change's event is appended in
 * the change's own transaction, so both commit or neither does. Any other
 * event is group-committed, and the request waits for the commit. An event
 * that cannot be written fails its request with 503 UNAVAILABLE, except a
 * pull when the operator chose to serve pulls anyway.
 */
export class AuditEventSink implements RegistryEventSink {
  constructor(
    private readonly writer: AuditWriter,
    private readonly options: AuditSinkOptions,
    private readonly next?: RegistryEventSink,
  ) {}

  async record(context: RequestContext, event: RegistryEvent, transaction: Knex.Transaction | null): Promise<void> {
    const input = auditInputOf(context, event, this.options.replica);
    try {
      if (transaction !== null) await this.writer.appendInTransaction(transaction, [input]);
      else if (this.options.failOpenPulls && isPullRelated(event)) await this.writer.appendDetached(input);
      else await this.writer.append(input);
    } catch (error) {
      context.logger.error({ err: error, action: event.action }, 'audit event could not be written, so the request was rejected');
      throw new RegistryError('UNAVAILABLE', 'the audit trail cannot be written at the moment, so the request was rejected; retry later');
    }
    await this.next?.record(context, event, transaction);
  }
}
