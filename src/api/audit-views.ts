import type { AuditEvent, DetailValue } from '../audit/chain.js';
import type { ExposureReport, PullerSummary, PullsReport } from '../audit/exposure.js';

/** An audit event as the API sends it in JSON and NDJSON. */
export interface AuditEventView {
  seq: number;
  occurredAt: string;
  action: string;
  actor: { kind: string; subject: string | null; tokenId: string | null };
  clientAddress: string | null;
  userAgent: string | null;
  requestId: string | null;
  repository: string | null;
  reference: string | null;
  digest: string | null;
  mediaType: string | null;
  bytes: number | null;
  decision: string | null;
  reason: string | null;
  policy: string | null;
  certificationState: string | null;
  replica: string;
  details: Record<string, DetailValue>;
  hash: string;
  prevHash: string;
  contentHash: string;
}

/** Returns the API representation of an event. */
export function eventView(event: AuditEvent): AuditEventView {
  return {
    seq: event.seq,
    occurredAt: event.occurredAt.toISOString(),
    action: event.action,
    actor: { kind: event.actorKind, subject: event.actorSubject, tokenId: event.tokenId },
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
    hash: event.hash,
    prevHash: event.prevHash,
    contentHash: event.contentHash,
  };
}

type CsvValue = string | number | null;

/** CSV columns in order: the header name, which is the field's path in the JSON view, and the value. */
const CSV_COLUMNS: ReadonlyArray<readonly [string, (view: AuditEventView) => CsvValue]> = [
  ['seq', (view) => view.seq],
  ['occurredAt', (view) => view.occurredAt],
  ['action', (view) => view.action],
  ['actor.kind', (view) => view.actor.kind],
  ['actor.subject', (view) => view.actor.subject],
  ['actor.tokenId', (view) => view.actor.tokenId],
  ['clientAddress', (view) => view.clientAddress],
  ['userAgent', (view) => view.userAgent],
  ['requestId', (view) => view.requestId],
  ['repository', (view) => view.repository],
  ['reference', (view) => view.reference],
  ['digest', (view) => view.digest],
  ['mediaType', (view) => view.mediaType],
  ['bytes', (view) => view.bytes],
  ['decision', (view) => view.decision],
  ['reason', (view) => view.reason],
  ['policy', (view) => view.policy],
  ['certificationState', (view) => view.certificationState],
  ['replica', (view) => view.replica],
  ['details', (view) => JSON.stringify(view.details)],
  ['hash', (view) => view.hash],
  ['prevHash', (view) => view.prevHash],
  ['contentHash', (view) => view.contentHash],
];

/** Text cells starting with one of these get a leading apostrophe, so spreadsheet programs do not run them as formulas. */
const FORMULA_START = /^[=+\-@\t\r']/;

/**
 * Encodes one CSV cell after RFC 4180: a null is an empty cell and an empty
 * string is `""`, so the two stay apart. A text cell that a spreadsheet
 * program would read as a formula (starting with =, +, -, @, tab or carriage
 * return) gets a leading apostrophe, and so does one that starts with an
 * apostrophe already, so removing one leading apostrophe from every text cell
 * that has one restores the stored value exactly.
 */
export function csvCell(value: CsvValue): string {
  if (value === null) return '';
  if (typeof value === 'number') return String(value);

  const guarded = FORMULA_START.test(value) ? `'${value}` : value;
  if (guarded === '' || /[",\r\n]/.test(guarded)) return `"${guarded.replaceAll('"', '""')}"`;
  return guarded;
}

/** The CSV header row, with its CRLF. */
export const CSV_HEADER = `${CSV_COLUMNS.map(([name]) => name).join(',')}\r\n`;

/** Returns an event as one CSV row with its CRLF. */
export function csvRow(event: AuditEvent): string {
  const view = eventView(event);
  return `${CSV_COLUMNS.map(([, valueOf]) => csvCell(valueOf(view))).join(',')}\r\n`;
}

/** Returns an event as one NDJSON line: the JSON view and a newline. */
export function ndjsonLine(event: AuditEvent): string {
  return `${JSON.stringify(eventView(event))}\n`;
}

function pullerView(summary: PullerSummary): Record<string, unknown> {
  return {
    actor: { kind: summary.actorKind, subject: summary.actor },
    pulls: summary.pulls,
    firstAt: summary.firstAt.toISOString(),
    lastAt: summary.lastAt.toISOString(),
    clientAddresses: summary.clientAddresses,
    repositories: summary.repositories,
  };
}

/** Returns the API representation of a pulls report. */
export function pullsView(report: PullsReport): Record<string, unknown> {
  return {
    digest: report.digest,
    repository: report.repository,
    pulls: report.pulls,
    actors: report.actors.map(pullerView),
    events: report.events.map(eventView),
    eventsTruncated: report.eventsTruncated,
  };
}

/** Returns the API representation of an exposure report. */
export function exposureView(report: ExposureReport): Record<string, unknown> {
  return {
    repository: report.repository,
    digest: report.digest,
    status: report.status,
    exposureEndsAt: report.exposureEndsAt?.toISOString() ?? null,
    incidents: report.incidents.map((incident) => ({ ...incident, occurredAt: incident.occurredAt.toISOString() })),
    pulledAfter: report.pulledAfter.map(pullerView),
    pulls: report.pulls,
    actors: report.actors.map(pullerView),
    events: report.events.map(eventView),
    eventsTruncated: report.eventsTruncated,
  };
}
