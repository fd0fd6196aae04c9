import type { Knex } from 'knex';
import type { RegistryEventSink } from '../audit/registry-events.js';
import { quoted } from '../auth/account-errors.js';
import type { Principal } from '../auth/identity-store.js';
import { globalPermissions } from '../auth/permissions.js';
import type { RequestContext } from '../context.js';
import { parseManifest } from '../registry/manifest-parser.js';
import { isValidName, looksLikeDigest, parseDigest } from '../registry/reference.js';
import { ScanConflictError, ScanInputError, ScanNotFoundError, ScanPermissionError } from './errors.js';
import type { BlobScanRecord } from './scanner.js';
import type { ScanQueue } from './scheduler.js';
import { OPEN_FINDING_CONDITION, scannedDigestsOf, scanSummary, type ScanState, type ScanSummary } from './summary.js';

/** Maximum length of a waiver's reason, in characters. */
export const MAX_WAIVER_REASON_LENGTH = 4096;

/** A waiver of a finding as the API shows it. */
export interface WaiverView {
  id: number;
  reason: string;
  expiresAt: string | null;
  actor: string;
  createdAt: string;
  /** Whether the waiver is in force now: it has no expiry, or its expiry is in the future. */
  active: boolean;
}

/** A finding as the API shows it: a redacted preview, never the secret, and no fingerprint, which could confirm a guessed secret. */
export interface FindingView {
  id: string;
  /** Image manifest digest the finding belongs to. */
  digest: string;
  /** Layer digest, or `config`. */
  layer: string;
  path: string | null;
  line: number | null;
  detector: string;
  severity: string;
  preview: string;
  createdAt: string;
  /** Whether a waiver is in force. */
  waived: boolean;
  /** The latest waiver, in force or expired; null when there is none. */
  waiver: WaiverView | null;
}

/** The scan of one image manifest. */
export interface ImageScanView {
  digest: string;
  state: ScanState | 'none';
  engineVersion: string | null;
  attempts: number;
  error: string | null;
  queuedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  blobs: BlobScanRecord[];
}

/** The scan state and findings of a manifest in a repository; for an index, of every image manifest under it. */
export interface ScanView extends ScanSummary {
  repository: string;
  digest: string;
  images: ImageScanView[];
  findings: FindingView[];
}

/** A waiver as the caller sends it. */
export interface WaiverInput {
  reason: string;
  /** ISO 8601 date and time in the future; absent for a waiver that does not expire. */
  expiresAt?: string | undefined;
}

interface ScanRow {
  digest: string;
  state: ScanState;
  engine_version: string | null;
  attempts: number;
  error: string | null;
  blobs: BlobScanRecord[];
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

interface FindingRow {
  id: string;
  digest: string;
  layer: string;
  path: string | null;
  line: number | null;
  detector: string;
  severity: string;
  preview: string;
  created_at: Date;
  waiver_id: number | null;
  waiver_reason: string | null;
  waiver_expires_at: Date | null;
  waiver_actor: string | null;
  waiver_created_at: Date | null;
  waiver_active: boolean | null;
}

export interface ScanServiceDeps {
  db: Knex;
  events: RegistryEventSink;
  scans: ScanQueue;
}

/**
 * Throws unless the principal may read the scans of a repository: with pull
 * on it (`holdsPull`, which the caller computes from its grants), any
 * `certify:*` permission, `audit:read` or `admin`.
 */
export function assertMayReadScans(principal: Principal, repository: string, holdsPull: boolean): void {
  const permissions = globalPermissions(principal.grants, principal.groups);
  const reviewer = permissions.has('certify:it') || permissions.has('certify:security') || permissions.has('certify:qa');
  if (holdsPull || reviewer || permissions.has('audit:read') || permissions.has('admin')) return;
  throw new ScanPermissionError(
    ['pull', 'certify:it', 'certify:security', 'certify:qa', 'audit:read', 'admin'],
    `${principal.subject} may not read the scans of ${repository}: that needs pull on the repository, a certify permission, audit:read or admin`,
  );
}

/**
 * Secret scans as reviewers use them: the state and findings of a manifest,
 * rescans, and waivers of findings. Rescans and waivers are recorded on the
 * audit trail in the transaction that makes them.
 */
export class ScanService {
  constructor(private readonly deps: ScanServiceDeps) {}

  /** Returns the scan of a manifest in a repository. Throws ScanInputError or ScanNotFoundError. */
  async view(repository: string, digest: string): Promise<ScanView> {
    checkNames(repository, digest);
    const { db } = this.deps;
    const repositoryId = await this.findManifest(db, repository, digest);
    const digests = await scannedDigestsOf(db, repositoryId, digest);
    const summary = await scanSummary(db, repositoryId, digest);

    const rows: ScanRow[] = await db('scans').whereIn('digest', digests).select('digest', 'state', 'engine_version', 'attempts', 'error', 'blobs', 'queued_at', 'started_at', 'finished_at');
    const byDigest = new Map(rows.map((row) => [row.digest, row]));
    const images = digests.map((scanned) => imageViewOf(scanned, byDigest.get(scanned)));
    return { repository, digest, ...summary, images, findings: await this.findings(db, digests) };
  }

  /**
   * Queues a new scan of a manifest, or of every image manifest under an
   * index, and returns the scan. Needs `certify:security` or `admin`. Throws
   * ScanConflictError while a run scans one of them.
   */
  async rescan(context: RequestContext, actor: Principal, repository: string, digest: string): Promise<ScanView> {
    checkNames(repository, digest);
    const permissions = globalPermissions(actor.grants, actor.groups);
    if (!permissions.has('certify:security') && !permissions.has('admin')) {
      throw new ScanPermissionError(['certify:security', 'admin'], `${actor.subject} may not queue scans: that needs certify:security (membership in the security group) or admin`);
    }

    const { db, events, scans } = this.deps;
    const repositoryId = await this.findManifest(db, repository, digest);
    await scans.prepare();
    await db.transaction(async (trx) => {
      const digests = await scannedDigestsOf(trx, repositoryId, digest);
      const manifests: Array<{ digest: string; media_type: string; content: Buffer }> = await trx('manifests').where({ repository_id: repositoryId }).whereIn('digest', digests).select('digest', 'media_type', 'content');
      for (const manifest of manifests) {
        const { blobs } = parseManifest(manifest.content, manifest.media_type);
        const queued = await scans.rescan(trx, { digest: manifest.digest, mediaType: manifest.media_type, blobs });
        if (!queued) throw new ScanConflictError(manifest.digest, 'scan_running', `the scan of ${manifest.digest} is running now: wait until it finishes, then ask again`);
      }
      await events.record(context, { action: 'scan.rescan', repository, digest, by: actor.subject }, trx);
    });
    scans.notify();
    context.logger.info({ repository, scanDigest: digest }, 'scan queued again');
    return this.view(repository, digest);
  }

  /**
   * Waives a finding, with a reason and an optional expiry in the future,
   * and returns the finding. Only `certify:security` may waive. Throws
   * ScanNotFoundError for an unknown finding.
   */
  async waive(context: RequestContext, actor: Principal, findingId: string, input: WaiverInput): Promise<FindingView> {
    const reason = input.reason.trim();
    const expiresAt = input.expiresAt === undefined ? null : new Date(input.expiresAt);
    const problems = [
      reason.length === 0 ? { field: 'reason', message: 'a waiver needs a reason' } : null,
      reason.length > MAX_WAIVER_REASON_LENGTH ? { field: 'reason', message: `the reason is ${reason.length} characters; the limit is ${MAX_WAIVER_REASON_LENGTH}` } : null,
      expiresAt !== null && Number.isNaN(expiresAt.getTime()) ? { field: 'expiresAt', message: 'expected an ISO 8601 date and time' } : null,
      expiresAt !== null && expiresAt.getTime() <= Date.now() ? { field: 'expiresAt', message: 'the expiry must be in the future' } : null,
    ].filter((problem) => problem !== null);
    if (problems.length > 0) throw new ScanInputError(problems);

    if (!globalPermissions(actor.grants, actor.groups).has('certify:security')) {
      throw new ScanPermissionError(['certify:security'], `${actor.subject} may not waive findings: that needs certify:security (membership in the security group)`);
    }

    const { db, events } = this.deps;
    const notFound = new ScanNotFoundError('finding', findingId.slice(0, 100), `finding ${quoted(findingId)} not found`);
    if (!isUuid(findingId)) throw notFound;
    await db.transaction(async (trx) => {
      const finding: { id: string; digest: string } | undefined = await trx('scan_findings').where({ id: findingId }).forShare().first('id', 'digest');
      if (!finding) throw notFound;
      await trx('scan_waivers').insert({ finding_id: findingId, reason, expires_at: expiresAt, actor: actor.subject });
      await events.record(context, { action: 'scan.waiver', repository: null, digest: finding.digest, findingId, reason, expiresAt: expiresAt?.toISOString() ?? null, by: actor.subject }, trx);
    });
    context.logger.info({ findingId }, 'scan finding waived');

    const [view] = await this.findings(db, null, findingId);
    if (!view) throw notFound;
    return view;
  }

  /** Returns the findings of the digests, or the one finding with `findingId`, each with its latest waiver. */
  private async findings(db: Knex, digests: readonly string[] | null, findingId?: string): Promise<FindingView[]> {
    const query = db('scan_findings as f')
      .joinRaw(
        `left join lateral (select w.id, w.reason, w.expires_at, w.actor, w.created_at, (w.expires_at is null or w.expires_at > now()) as active
           from scan_waivers w where w.finding_id = f.id order by w.created_at desc, w.id desc limit 1) as w on true`,
      )
      .select(
        'f.id',
        'f.digest',
        'f.layer',
        'f.path',
        'f.line',
        'f.detector',
        'f.severity',
        'f.preview',
        'f.created_at',
        'w.id as waiver_id',
        'w.reason as waiver_reason',
        'w.expires_at as waiver_expires_at',
        'w.actor as waiver_actor',
        'w.created_at as waiver_created_at',
        'w.active as waiver_active',
        db.raw(`(${OPEN_FINDING_CONDITION}) as open`),
      )
      .orderBy(['f.digest', 'f.layer', 'f.path', 'f.line', 'f.detector', 'f.id']);
    if (digests !== null) query.whereIn('f.digest', digests);
    if (findingId !== undefined) query.where('f.id', findingId);
    const rows: Array<FindingRow & { open: boolean }> = await query;
    return rows.map(findingViewOf);
  }

  /** Returns the repository id after checking that the manifest is in it. */
  private async findManifest(db: Knex, repository: string, digest: string): Promise<number> {
    const row: { id: number } | undefined = await db('repositories').where({ name: repository }).first('id');
    if (!row) throw new ScanNotFoundError('repository', repository, `repository ${repository} not found`);
    const manifest = await db('manifests').where({ repository_id: row.id, digest }).first('id');
    if (!manifest) throw new ScanNotFoundError('manifest', digest, `manifest ${digest} not found in repository ${repository}`);
    return Number(row.id);
  }
}

/** Throws ScanInputError naming each of repository and digest that is invalid. */
function checkNames(repository: string, digest: string): void {
  const problems = [];
  if (!isValidName(repository)) problems.push({ field: 'repository', message: `invalid repository name ${quoted(repository)}: use lowercase path components separated by "/", at most 255 characters` });
  if (!looksLikeDigest(digest) || !isValidDigest(digest)) problems.push({ field: 'digest', message: `${quoted(digest)} is not a manifest digest such as sha256:<64 hex digits>` });
  if (problems.length > 0) throw new ScanInputError(problems);
}

function isValidDigest(digest: string): boolean {
  try {
    parseDigest(digest);
    return true;
  } catch {
    return false;
  }
}

function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value);
}

function imageViewOf(digest: string, row: ScanRow | undefined): ImageScanView {
  if (!row) return { digest, state: 'none', engineVersion: null, attempts: 0, error: null, queuedAt: null, startedAt: null, finishedAt: null, blobs: [] };
  return {
    digest,
    state: row.state,
    engineVersion: row.engine_version,
    attempts: row.attempts,
    error: row.error,
    queuedAt: row.queued_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
    blobs: row.blobs,
  };
}

function findingViewOf(row: FindingRow & { open: boolean }): FindingView {
  const waiver: WaiverView | null =
    row.waiver_id === null
      ? null
      : {
          id: Number(row.waiver_id),
          reason: row.waiver_reason ?? '',
          expiresAt: row.waiver_expires_at?.toISOString() ?? null,
          actor: row.waiver_actor ?? '',
          createdAt: (row.waiver_created_at as Date).toISOString(),
          active: row.waiver_active === true,
        };
  return {
    id: row.id,
    digest: row.digest,
    layer: row.layer,
    path: row.path,
    line: row.line,
    detector: row.detector,
    severity: row.severity,
    preview: row.preview,
    createdAt: row.created_at.toISOString(),
    waived: !row.open,
    waiver,
  };
}
