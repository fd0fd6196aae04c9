import type { Knex } from 'knex';
import type { AuditActorKind, AuditEvent } from './chain.js';
import { AUDIT_EVENT_COLUMNS, eventOfRow, type AuditEventRow } from './store.js';

/** Pull events a report lists at most, newest first; the summaries count every pull. */
export const MAX_REPORTED_PULLS = 1000;

/** Distinct client addresses an actor summary lists at most, in sort order. */
export const MAX_ADDRESSES_PER_ACTOR = 100;

/** Incidents an exposure report lists at most, oldest first. */
const MAX_INCIDENTS = 100;

/** Everything one actor pulled of a digest. */
export interface PullerSummary {
  actorKind: AuditActorKind;
  /** The user, robot or system subject; null for anonymous pulls. */
  actor: string | null;
  pulls: number;
  firstAt: Date;
  lastAt: Date;
  /** Distinct client addresses, at most MAX_ADDRESSES_PER_ACTOR, in sort order. */
  clientAddresses: string[];
  repositories: string[];
}

/** Report of the pulls of a digest: a summary per actor and the newest pull events. */
export interface PullsReport {
  digest: string;
  repository: string | null;
  /** Every served pull counted. */
  pulls: number;
  /** One entry per actor, the earliest puller first. */
  actors: PullerSummary[];
  /** The newest pulls, at most MAX_REPORTED_PULLS. */
  events: AuditEvent[];
  /** Whether older pulls exist than `events` lists. */
  eventsTruncated: boolean;
}

/** A revocation, or a rejection by one role, that ended a digest's exposure. */
export interface ExposureIncident {
  seq: number;
  occurredAt: Date;
  kind: 'revocation' | 'rejection';
  /** The subject that revoked or rejected. */
  actor: string | null;
  /** The role that rejected; null for a revocation. */
  role: string | null;
  reason: string | null;
}

/**
 * Report of the pulls of a digest before its first revocation or rejection.
 * `status` names the first incident: `revoked`, `rejected`, or `not-revoked` when
 * there was none, in which case the pulls are every pull so far.
 */
export interface ExposureReport extends Omit<PullsReport, 'repository'> {
  repository: string;
  status: 'revoked' | 'rejected' | 'not-revoked';
  /** Time of the first incident, which ends the exposure window; null when there is none. */
  exposureEndsAt: Date | null;
  /** Every revocation and rejection of the digest in the repository, oldest first, at most 100. */
  incidents: ExposureIncident[];
  /**
   * Actors who pulled the digest after the first incident, which only holders
   * of uncertified access can do: one entry per actor. Empty without an incident.
   */
  pulledAfter: PullerSummary[];
}

interface SummaryRow {
  actor_kind: string;
  actor_subject: string | null;
  pulls: number;
  first_at: Date;
  last_at: Date;
  client_addresses: string[] | null;
  repositories: string[];
}

interface PullScope {
  digest: string;
  repository?: string;
  /** Only pulls with a lower sequence number. */
  beforeSeq?: number;
  /** Only pulls with a higher sequence number. */
  afterSeq?: number;
}

/**
 * Adds the conditions of a served pull of the digest: a manifest or blob pull
 * that was allowed, or allowed under a dry-run policy that would deny it.
 * Within one repository, a manifest pull that the digest allowed counts too:
 * a child of an index or an attachment of a subject, whose event names the
 * digest in `details.certifiedDigest`. Denied attempts are `pull.denied`
 * events and never match.
 */
function wherePulled(query: Knex.QueryBuilder, scope: PullScope): Knex.QueryBuilder {
  query.whereIn('action', ['manifest.pull', 'blob.pull']).whereIn('decision', ['allowed', 'would-deny']);
  if (scope.repository !== undefined) {
    query.where('repository', scope.repository).where((pulled) => {
      pulled.where('digest', scope.digest).orWhere((through) => {
        through.where('action', 'manifest.pull').whereRaw(`details->>'certifiedDigest' = ?`, [scope.digest]);
      });
    });
  } else {
    query.where('digest', scope.digest);
  }
  if (scope.beforeSeq !== undefined) query.where('seq', '<', scope.beforeSeq);
  if (scope.afterSeq !== undefined) query.where('seq', '>', scope.afterSeq);
  return query;
}

async function summarizePullers(db: Knex, scope: PullScope): Promise<PullerSummary[]> {
  const query = db('audit_events')
    .select('actor_kind', 'actor_subject')
    .select(db.raw('count(*) as pulls'))
    .select(db.raw('min(occurred_at) as first_at'))
    .select(db.raw('max(occurred_at) as last_at'))
    .select(db.raw(`(array_agg(distinct client_address order by client_address) filter (where client_address is not null))[1:${MAX_ADDRESSES_PER_ACTOR}] as client_addresses`))
    .select(db.raw('array_agg(distinct repository order by repository) as repositories'))
    .groupBy('actor_kind', 'actor_subject')
    .orderByRaw('min(seq)');
  const rows = (await wherePulled(query, scope)) as SummaryRow[];
  return rows.map((row) => ({
    actorKind: row.actor_kind as AuditActorKind,
    actor: row.actor_subject,
    pulls: Number(row.pulls),
    firstAt: row.first_at,
    lastAt: row.last_at,
    clientAddresses: row.client_addresses ?? [],
    repositories: row.repositories,
  }));
}

async function newestPulls(db: Knex, scope: PullScope): Promise<{ events: AuditEvent[]; truncated: boolean }> {
  const query = db('audit_events')
    .select(...AUDIT_EVENT_COLUMNS)
    .orderBy('seq', 'desc')
    .limit(MAX_REPORTED_PULLS + 1);
  const rows = (await wherePulled(query, scope)) as AuditEventRow[];
  return { events: rows.slice(0, MAX_REPORTED_PULLS).map(eventOfRow), truncated: rows.length > MAX_REPORTED_PULLS };
}

async function reportPulls(db: Knex, scope: PullScope): Promise<Omit<PullsReport, 'digest' | 'repository'>> {
  const [actors, newest] = await Promise.all([summarizePullers(db, scope), newestPulls(db, scope)]);
  const pulls = actors.reduce((total, actor) => total + actor.pulls, 0);
  return { pulls, actors, events: newest.events, eventsTruncated: newest.truncated };
}

/** Reports who pulled a digest, in one repository or in any, and when. */
export async function pullsOf(db: Knex, target: { digest: string; repository?: string }): Promise<PullsReport> {
  const report = await reportPulls(db, target);
  return { digest: target.digest, repository: target.repository ?? null, ...report };
}

interface IncidentRow {
  seq: number;
  occurred_at: Date;
  action: string;
  actor_subject: string | null;
  reason: string | null;
  details: { by?: unknown; role?: unknown };
}

/** Revocations and rejections of a digest in a repository, oldest first. */
async function incidentsOf(db: Knex, repository: string, digest: string): Promise<ExposureIncident[]> {
  const rows = (await db('audit_events')
    .select('seq', 'occurred_at', 'action', 'actor_subject', 'reason', 'details')
    .where({ digest, repository })
    .where((condition) => {
      condition.where('action', 'certification.revocation').orWhere((rejection) => {
        rejection.where('action', 'certification.decision').whereRaw(`details->>'decision' = 'reject'`);
      });
    })
    .orderBy('seq', 'asc')
    .limit(MAX_INCIDENTS)) as IncidentRow[];
  return rows.map((row) => ({
    seq: Number(row.seq),
    occurredAt: row.occurred_at,
    kind: row.action === 'certification.revocation' ? 'revocation' : 'rejection',
    actor: typeof row.details.by === 'string' ? row.details.by : row.actor_subject,
    role: typeof row.details.role === 'string' ? row.details.role : null,
    reason: row.reason,
  }));
}

/**
 * Reports the exposure of a digest in a repository: its revocations and
 * rejections, and everyone whose pull of the digest was served before the
 * first of them. The first incident closes the window, because from then on
 * the gate denies the digest to everyone without `pull-uncertified`.
 *
 * Pulls of the digest itself count, and so do manifest pulls that it allowed:
 * the children of a revoked index and the attachments of a revoked subject.
 * NOTE: the window is cut by sequence number, so a pull that the gate allowed just before the
 * revocation but whose event was appended after it is not listed.
 */
export async function exposureOf(db: Knex, target: { repository: string; digest: string }): Promise<ExposureReport> {
  const incidents = await incidentsOf(db, target.repository, target.digest);
  const first = incidents[0];
  const report = await reportPulls(db, { ...target, ...(first ? { beforeSeq: first.seq } : {}) });
  const pulledAfter = first ? await summarizePullers(db, { ...target, afterSeq: first.seq }) : [];

  let status: ExposureReport['status'] = 'not-revoked';
  if (first) status = first.kind === 'revocation' ? 'revoked' : 'rejected';
  return { repository: target.repository, digest: target.digest, status, exposureEndsAt: first?.occurredAt ?? null, incidents, pulledAfter, ...report };
}
