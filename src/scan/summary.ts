import type { Knex } from 'knex';
import { IMAGE_MEDIA_TYPES } from '../registry/media-types.js';

/** State of the secret scan of one image manifest digest. */
export type ScanState = 'queued' | 'scanning' | 'clean' | 'findings' | 'failed';

/** States after which a scan does not change until a rescan is requested. */
export const FINISHED_SCAN_STATES: ReadonlySet<ScanState> = new Set(['clean', 'findings', 'failed']);

/**
 * Scan state of a manifest as certification uses it, with `none` for content
 * that was never scanned. For an image index it adds up the states of every
 * image manifest that the index lists at any depth.
 */
export interface ScanSummary {
  state: ScanState | 'none';
  /** Findings without a waiver in force: none, or only expired ones. */
  openFindings: number;
}

/**
 * SQL condition that is true for a finding (alias `f`) without a waiver in
 * force. A waiver without expiry never lapses.
 */
export const OPEN_FINDING_CONDITION = 'not exists (select 1 from scan_waivers w where w.finding_id = f.id and (w.expires_at is null or w.expires_at > now()))';

/** Order in which states win when the states of an index's images are added up: the first one present is the index's state. */
const STATE_PRECEDENCE: ReadonlyArray<ScanSummary['state']> = ['failed', 'none', 'scanning', 'queued', 'findings', 'clean'];

/**
 * Returns the image manifest digests whose scans decide about a manifest of
 * a repository: the manifest itself when it is an image manifest, or every
 * image manifest under it when it is an index. Returns an empty list for an
 * unknown manifest.
 */
export async function scannedDigestsOf(db: Knex, repositoryId: number, digest: string): Promise<string[]> {
  const rows: Array<{ digest: string; media_type: string }> = (
    await db.raw(
      `with recursive tree(id, digest, media_type) as (
         select id, digest, media_type from manifests where repository_id = ? and digest = ?
         union
         select m.id, m.digest, m.media_type from tree t join manifest_children c on c.parent_id = t.id join manifests m on m.id = c.child_id
       )
       select distinct digest, media_type from tree`,
      [repositoryId, digest],
    )
  ).rows;
  return rows.filter((row) => IMAGE_MEDIA_TYPES.has(row.media_type)).map((row) => row.digest);
}

/** Returns the state and open finding count of each digest that has a scan row. */
export async function scanStatesOf(db: Knex, digests: readonly string[]): Promise<Map<string, { state: ScanState; openFindings: number }>> {
  if (digests.length === 0) return new Map();
  const rows: Array<{ digest: string; state: ScanState; open_findings: number }> = await db('scans as s')
    .whereIn('s.digest', [...digests])
    .select('s.digest', 's.state', db.raw(`(select count(*) from scan_findings f where f.digest = s.digest and ${OPEN_FINDING_CONDITION})::int as open_findings`));
  return new Map(rows.map((row) => [row.digest, { state: row.state, openFindings: Number(row.open_findings) }]));
}

/**
 * Returns the scan summary of a manifest in a repository. An index with no
 * image manifest under it has nothing to scan and counts as clean.
 */
export async function scanSummary(db: Knex, repositoryId: number, digest: string): Promise<ScanSummary> {
  const digests = await scannedDigestsOf(db, repositoryId, digest);
  const states = await scanStatesOf(db, digests);

  const present = new Set<ScanSummary['state']>(digests.map((scanned) => states.get(scanned)?.state ?? 'none'));
  const state = STATE_PRECEDENCE.find((candidate) => present.has(candidate)) ?? 'clean';
  const openFindings = [...states.values()].reduce((sum, entry) => sum + entry.openFindings, 0);
  return { state, openFindings };
}

/** Reason a Security approval must wait for the scan, as CertificationConflictError reports it. */
export type ScanGateReason = 'scan_unfinished' | 'scan_failed' | 'scan_findings';

/**
 * Returns why Security may not approve a digest yet, or null when it may: the
 * scan must have finished clean, or with every finding waived.
 */
export function scanGateProblem(repository: string, digest: string, summary: ScanSummary): { reason: ScanGateReason; message: string } | null {
  const rescan = `POST /api/v1/scans/${digest}/rescan`;
  const scans = `GET /api/v1/scans?repository=${encodeURIComponent(repository)}&digest=${digest}`;
  switch (summary.state) {
    case 'clean':
      return null;
    case 'findings':
      if (summary.openFindings === 0) return null;
      return {
        reason: 'scan_findings',
        message: `the secret scan of ${digest} has ${summary.openFindings} finding(s) that are not waived: waive each with POST /api/v1/scans/findings/{id}/waivers (see ${scans}) or reject the image`,
      };
    case 'failed':
      return { reason: 'scan_failed', message: `the secret scan of ${digest} failed, so Security cannot approve it: see ${scans} for the reason, and queue a new scan with ${rescan}` };
    case 'none':
      return { reason: 'scan_unfinished', message: `${digest} has not been scanned for secrets: queue a scan with ${rescan}; Security can approve it once the scan finishes` };
    case 'queued':
    case 'scanning':
      return { reason: 'scan_unfinished', message: `the secret scan of ${digest} is still running (${summary.state}); Security can approve it once the scan finishes` };
  }
}
