import { createHash } from 'node:crypto';

/** The previous hash of the first event ever written: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

export const AUDIT_ACTOR_KINDS = ['user', 'robot', 'anonymous', 'system'] as const;
export type AuditActorKind = (typeof AUDIT_ACTOR_KINDS)[number];

export const AUDIT_DECISIONS = ['allowed', 'denied', 'would-deny'] as const;
export type AuditDecision = (typeof AUDIT_DECISIONS)[number];

/** JSON values that event details may contain. */
export type DetailValue = string | number | boolean | null | DetailValue[] | { [key: string]: DetailValue };

/** Facts of an event before the chain numbers it. */
export interface AuditEventInput {
  action: string;
  actorKind: AuditActorKind;
  actorSubject: string | null;
  tokenId: string | null;
  clientAddress: string | null;
  userAgent: string | null;
  requestId: string | null;
  repository: string | null;
  reference: string | null;
  digest: string | null;
  mediaType: string | null;
  bytes: number | null;
  decision: AuditDecision | null;
  reason: string | null;
  policy: string | null;
  certificationState: string | null;
  replica: string;
  details: Record<string, DetailValue>;
}

/** An event as stored: its input, its place in the chain, its database time and its hashes. */
export interface AuditEvent extends AuditEventInput {
  seq: number;
  occurredAt: Date;
  contentHash: string;
  prevHash: string;
  hash: string;
}

/** Serialises a JSON value with object keys in code-point order and no spaces, so equal values give equal text. */
export function canonicalJson(value: DetailValue | undefined): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).filter((key) => value[key] !== undefined).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(',')}}`;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('audit details may not contain a non-finite number');
  return JSON.stringify(value);
}

/** Returns the canonical content of an event: every stored field except the hashes. */
export function canonicalContent(event: AuditEventInput & { seq: number; occurredAt: Date }): string {
  return canonicalJson({
    seq: event.seq,
    occurredAt: event.occurredAt.toISOString(),
    action: event.action,
    actorKind: event.actorKind,
    actorSubject: event.actorSubject,
    tokenId: event.tokenId,
    clientAddress: event.clientAddress,
    userAgent: event.userAgent,
    requestId: event.requestId,
    repository: event.repository,
    reference: event.reference,
    digest: event.digest,
    mediaType: event.mediaType,
    bytes: event.bytes,
    decision: event.decision,
    reason: event.reason,
    policy: event.policy,
    certificationState: event.certificationState,
    replica: event.replica,
    details: event.details,
  });
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Returns the sha256 of an event's canonical content, in hex. */
export function contentHashOf(event: AuditEventInput & { seq: number; occurredAt: Date }): string {
  return sha256Hex(canonicalContent(event));
}

/** Returns the chained hash of an event: sha256 over the previous event's hash and this event's content hash. */
export function chainHash(prevHash: string, contentHash: string): string {
  return sha256Hex(`${prevHash}\n${contentHash}`);
}

/** Numbers and links a batch of events after the chain's end. */
export function linkEvents(inputs: readonly AuditEventInput[], lastSeq: number, lastHash: string, occurredAt: Date): AuditEvent[] {
  let prevHash = lastHash;
  return inputs.map((input, index) => {
    const numbered = { ...input, seq: lastSeq + index + 1, occurredAt };
    const contentHash = contentHashOf(numbered);
    const hash = chainHash(prevHash, contentHash);
    const event = { ...numbered, contentHash, prevHash, hash };
    prevHash = hash;
    return event;
  });
}
