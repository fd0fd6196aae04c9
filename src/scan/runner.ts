import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type pino from 'pino';
import type { JobRun } from '../jobs/queue.js';
import type { Finding } from './engine/index.js';
import { ScanContentError, type ImageScanner, type ImageScanResult } from './scanner.js';
import { FINISHED_SCAN_STATES, type ScanState } from './summary.js';
import { SCAN_ENGINE_VERSION, type ScanJobData } from './scheduler.js';

/** Lease timing of scan runs. */
export interface ScanLeaseSettings {
  /** How long a claim lasts without renewal, in seconds. A run of a dead process is taken over after this time. */
  leaseSeconds: number;
  /** How often a running scan renews its lease, in seconds; well below leaseSeconds. */
  renewSeconds: number;
}

/** Findings inserted per statement: 8 parameters each, well below the 65535 parameters one statement may bind. */
const FINDING_INSERT_BATCH = 1000;

/** Defaults: a scan cut off by a crash can be taken over two minutes later. */
export const DEFAULT_SCAN_LEASE: ScanLeaseSettings = { leaseSeconds: 120, renewSeconds: 30 };

/** Thrown when another run holds the scan with a lease in force; the job queue retries later. */
export class ScanBusyError extends Error {
  constructor(
    readonly digest: string,
    readonly leaseExpiresAt: Date,
  ) {
    super(`the scan of ${digest} is held by another run until ${leaseExpiresAt.toISOString()}; the job is retried later`);
    this.name = 'ScanBusyError';
  }
}

/** Thrown inside a run whose lease another run took over, so its results must be dropped. */
class LeaseLostError extends Error {
  constructor(digest: string) {
    super(`the lease on the scan of ${digest} was lost to another run`);
    this.name = 'LeaseLostError';
  }
}

export interface ScanRunnerDeps {
  db: Knex;
  scanner: ImageScanner;
  logger: pino.Logger;
  lease?: ScanLeaseSettings;
  engineVersion?: string;
}

interface ScanRow {
  digest: string;
  state: ScanState;
  attempts: number;
  lease_expires_at: Date | null;
}

/**
 * Runs scan jobs. A run claims the scan row with a lease (state `scanning`,
 * a unique owner and an expiry), so that two replicas never scan one digest
 * at the same time, and renews the lease while it reads the layers. Each
 * claim is logged in `scan_runs`.
 *
 * The outcome is stored only while the run still holds the lease. A failure
 * that another attempt may fix (storage, database, shutdown) puts the scan
 * back to `queued` and throws, so the job queue retries it. A run of a
 * process that died is retried when its job expires, and takes over the
 * expired lease. Missing content, an unscannable layer and the last failed
 * attempt end in state `failed` with the reason.
 */
export class ScanRunner {
  private readonly lease: ScanLeaseSettings;
  private readonly engineVersion: string;

  constructor(private readonly deps: ScanRunnerDeps) {
    this.lease = deps.lease ?? DEFAULT_SCAN_LEASE;
    this.engineVersion = deps.engineVersion ?? SCAN_ENGINE_VERSION;
  }

  /** Runs one attempt of a scan job. */
  async run(job: JobRun<ScanJobData>, signal: AbortSignal): Promise<void> {
    const { digest } = job.data;
    const logger = this.deps.logger.child({ scanDigest: digest, jobId: job.id });
    const owner = randomUUID();
    const claimed = await this.claim(digest, owner, job, logger);
    if (!claimed) return;

    const attempt = claimed.attempts;
    logger.info({ attempt, leaseOwner: owner }, 'scan started');
    const controller = new AbortController();
    const stopOnAbort = () => controller.abort(signal.reason);
    signal.addEventListener('abort', stopOnAbort, { once: true });
    const renewal = setInterval(() => {
      this.renew(digest, owner).then(
        (stillOwned) => {
          if (!stillOwned) controller.abort(new LeaseLostError(digest));
        },
        (error: unknown) => logger.warn({ err: error }, 'renewing the scan lease failed; the next renewal tries again'),
      );
    }, this.lease.renewSeconds * 1000);

    try {
      const result = await this.deps.scanner.scan(digest, controller.signal);
      const state = await this.finish(digest, owner, result);
      logger.info({ state, findings: result.findings.length, blobs: result.blobs.length }, 'scan finished');
    } catch (error) {
      const cause = controller.signal.aborted && controller.signal.reason instanceof LeaseLostError ? controller.signal.reason : error;
      await this.handleFailure(digest, owner, job, cause, controller.signal.aborted, logger);
    } finally {
      clearInterval(renewal);
      signal.removeEventListener('abort', stopOnAbort);
    }
  }

  /**
   * Claims the scan for this run, or returns null when there is nothing to
   * do. Throws ScanBusyError while another run holds a lease in force.
   */
  private async claim(digest: string, owner: string, job: JobRun<ScanJobData>, logger: pino.Logger): Promise<ScanRow | null> {
    const { db } = this.deps;
    return db.transaction(async (trx) => {
      const row: ScanRow | undefined = await trx('scans').where({ digest }).forUpdate().first('digest', 'state', 'attempts', 'lease_expires_at');
      if (!row) {
        logger.warn('scan job has no scan row; nothing to do');
        return null;
      }
      if (FINISHED_SCAN_STATES.has(row.state)) {
        logger.info({ state: row.state }, 'scan already finished; the job ends');
        return null;
      }

      const [claimed]: ScanRow[] = await trx('scans')
        .where({ digest })
        .andWhere((where) => where.where({ state: 'queued' }).orWhere((expired) => expired.where({ state: 'scanning' }).andWhere('lease_expires_at', '<=', trx.fn.now())))
        .update({
          state: 'scanning',
          lease_owner: owner,
          lease_expires_at: trx.raw(`now() + make_interval(secs => ?)`, [this.lease.leaseSeconds]),
          attempts: trx.raw('attempts + 1'),
          started_at: trx.fn.now(),
          updated_at: trx.fn.now(),
        })
        .returning(['digest', 'state', 'attempts', 'lease_expires_at']);
      if (!claimed) throw new ScanBusyError(digest, row.lease_expires_at ?? new Date());

      if (row.state === 'scanning') logger.warn('took over the scan from a run whose lease expired');
      await trx('scan_runs').where({ digest, finished_at: null }).update({ finished_at: trx.fn.now(), outcome: 'lost' });
      await trx('scan_runs').insert({ digest, job_id: job.id, lease_owner: owner, attempt: claimed.attempts });
      return claimed;
    });
  }

  /** Extends the lease; returns false when this run no longer holds it. */
  private async renew(digest: string, owner: string): Promise<boolean> {
    const updated = await this.deps.db('scans')
      .where({ digest, lease_owner: owner, state: 'scanning' })
      .update({ lease_expires_at: this.deps.db.raw(`now() + make_interval(secs => ?)`, [this.lease.leaseSeconds]), updated_at: this.deps.db.fn.now() });
    return updated > 0;
  }

  /**
   * Stores the findings and the final state while the run holds the lease.
   * Findings are matched by fingerprint, so a finding seen again keeps its id
   * and waivers, and findings that this run did not see are removed.
   */
  private async finish(digest: string, owner: string, result: ImageScanResult): Promise<ScanState> {
    const unscannable = result.blobs.filter((blob) => blob.status === 'unscannable');
    const findings = uniqueByFingerprint(result.findings);
    let state: ScanState = findings.length > 0 ? 'findings' : 'clean';
    if (unscannable.length > 0) state = 'failed';
    const error = unscannable.length > 0 ? unscannable.map((blob) => `${blob.blob === 'config' ? 'the configuration' : `layer ${blob.blob}`} could not be scanned: ${blob.reason ?? 'unknown reason'}`).join('; ') : null;

    await this.deps.db.transaction(async (trx) => {
      const owned = await trx('scans').where({ digest, lease_owner: owner, state: 'scanning' }).forUpdate().first('digest');
      if (!owned) throw new LeaseLostError(digest);

      // One statement binds at most 65535 parameters (the PostgreSQL protocol counts them in 16 bits), so rows go in batches.
      for (let start = 0; start < findings.length; start += FINDING_INSERT_BATCH) {
        await trx('scan_findings')
          .insert(
            findings.slice(start, start + FINDING_INSERT_BATCH).map((finding) => ({
              digest,
              layer: finding.layer,
              path: finding.path,
              line: finding.line,
              detector: finding.detector,
              severity: finding.severity,
              preview: finding.preview,
              fingerprint: finding.fingerprint,
            })),
          )
          .onConflict(['digest', 'fingerprint'])
          .merge(['layer', 'path', 'line', 'detector', 'severity', 'preview', 'updated_at']);
      }
      // The fingerprints are bound as one array parameter, whatever their number.
      await trx('scan_findings')
        .where({ digest })
        .whereRaw('not (fingerprint = any(?::text[]))', [findings.map((finding) => finding.fingerprint)])
        .delete();

      await trx('scans')
        .where({ digest })
        .update({
          state,
          error,
          engine_version: this.engineVersion,
          blobs: JSON.stringify(result.blobs),
          lease_owner: null,
          lease_expires_at: null,
          finished_at: trx.fn.now(),
          updated_at: trx.fn.now(),
        });
      await trx('scan_runs').where({ lease_owner: owner }).update({ finished_at: trx.fn.now(), outcome: state });
    });
    return state;
  }

  /**
   * Records a failed attempt. A lost lease ends the run quietly, because the
   * run that holds the lease stores the outcome. A failure that may pass is
   * retried unless this was the last attempt; anything else fails the scan.
   */
  private async handleFailure(digest: string, owner: string, job: JobRun<ScanJobData>, error: unknown, interrupted: boolean, logger: pino.Logger): Promise<void> {
    const attempt = job.retryCount + 1;
    if (error instanceof LeaseLostError) {
      logger.warn({ attempt }, 'scan stopped: another run took over its lease; this run drops its results');
      await this.deps.db('scan_runs').where({ lease_owner: owner }).update({ finished_at: this.deps.db.fn.now(), outcome: 'lost' });
      return;
    }

    const message = failureMessage(error, digest, interrupted);
    const retry = !(error instanceof ScanContentError) && job.retryCount < job.retryLimit;
    const released = await this.release(digest, owner, retry ? 'queued' : 'failed', retry ? `attempt ${attempt} failed, retrying: ${message}` : message);
    if (!released) {
      logger.warn({ err: error, attempt }, 'scan failed after another run took over its lease; this run drops its results');
      return;
    }
    if (!retry) {
      logger.warn({ err: error, attempt }, 'scan failed');
      return;
    }
    logger.warn({ err: error, attempt, retryLimit: job.retryLimit }, 'scan attempt failed; it will be retried');
    throw error;
  }

  /** Gives up the lease and sets the state; returns false when this run no longer held the lease. */
  private async release(digest: string, owner: string, state: 'queued' | 'failed', error: string): Promise<boolean> {
    return this.deps.db.transaction(async (trx) => {
      const updated = await trx('scans')
        .where({ digest, lease_owner: owner, state: 'scanning' })
        .update({ state, error, lease_owner: null, lease_expires_at: null, updated_at: trx.fn.now(), ...(state === 'failed' ? { finished_at: trx.fn.now() } : {}) });
      let outcome = state === 'queued' ? 'retry' : 'failed';
      if (updated === 0) outcome = 'lost';
      await trx('scan_runs').where({ lease_owner: owner }).update({ finished_at: trx.fn.now(), outcome });
      return updated > 0;
    });
  }
}

/** Returns the reason stored with a failed attempt; only the scan's own errors are shown, others are in the log. */
function failureMessage(error: unknown, digest: string, interrupted: boolean): string {
  if (error instanceof ScanContentError) return error.message;
  if (interrupted) return 'the scan was interrupted: the gateway stopped or the job reached its time limit';
  return `internal error: the failure was logged with scan digest ${digest}`;
}

/** Drops findings whose fingerprint appeared earlier, because the table keeps one finding per fingerprint and digest. */
function uniqueByFingerprint(findings: readonly Finding[]): Finding[] {
  const seen = new Set<string>();
  return findings.filter((finding) => {
    if (seen.has(finding.fingerprint)) return false;
    seen.add(finding.fingerprint);
    return true;
  });
}
