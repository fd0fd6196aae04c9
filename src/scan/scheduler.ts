import type { Knex } from 'knex';
import type { JobQueue } from '../jobs/queue.js';
import { IMAGE_MEDIA_TYPES } from '../registry/media-types.js';
import type { PushedManifest, ScanScheduler } from '../registry/manifests.js';

/** Queue name of the secret scan jobs. */
export const SCAN_JOB = 'secret-scan';

/** Data of one scan job. */
export interface ScanJobData {
  digest: string;
}

/**
 * Version of what the scan finds. A finished scan made with another version
 * is queued again when its digest is pushed again. Change it whenever the
 * detectors or limits in src/scan/engine change their results.
 */
export const SCAN_ENGINE_VERSION = '5';

/** Minimum time a scan job may run before pg-boss expires it, in seconds. */
const MIN_SCAN_EXPIRY_SECONDS = 15 * 60;

/** Maximum time a scan job may run before pg-boss expires it, in seconds. */
const MAX_SCAN_EXPIRY_SECONDS = 6 * 3600;

/**
 * Slowest scan rate assumed when the expiry is sized from the compressed
 * bytes of an image, in bytes per second. NOTE: an estimate, not a
 * measurement, chosen low so that slow object stores fit in the expiry.
 */
const MIN_SCAN_BYTES_PER_SECOND = 2 * 1024 * 1024;

/** Returns the expiry of a scan job in seconds: 15 minutes plus the time to read the blobs at the slowest assumed rate, at most 6 hours. */
export function scanExpirySeconds(blobBytes: number): number {
  return Math.min(MAX_SCAN_EXPIRY_SECONDS, MIN_SCAN_EXPIRY_SECONDS + Math.ceil(blobBytes / MIN_SCAN_BYTES_PER_SECOND));
}

/**
 * Queues secret scans in the transaction that stores the content, so that a
 * committed push always has its scan row and job. A digest is scanned once
 * whatever the number of repositories it is pushed to, because its bytes are
 * the same everywhere.
 *
 * Only image manifests are scanned. An index is not scanned itself: each of
 * its child manifests is pushed before it and scanned as an image.
 */
export class ScanQueue implements ScanScheduler {
  constructor(
    private readonly queue: JobQueue,
    private readonly engineVersion: string = SCAN_ENGINE_VERSION,
  ) {}

  /** Starts the job queue, which may create its schema, so that no push transaction waits for that. */
  prepare(): Promise<void> {
    return this.queue.start();
  }

  /**
   * Queues a scan of a pushed image manifest unless its scan is queued or
   * running, or finished with the current engine version. Returns whether a
   * job was queued.
   */
  async schedule(trx: Knex.Transaction, manifest: PushedManifest): Promise<boolean> {
    if (!IMAGE_MEDIA_TYPES.has(manifest.mediaType)) return false;
    const rows: Array<{ digest: string }> = (
      await trx.raw(
        `insert into scans (digest, media_type, state) values (?, ?, 'queued')
         on conflict (digest) do update set state = 'queued', error = null, attempts = 0, queued_at = now(), started_at = null, finished_at = null, updated_at = now()
           where scans.state in ('clean', 'findings', 'failed') and scans.engine_version is distinct from ?
         returning digest`,
        [manifest.digest, manifest.mediaType, this.engineVersion],
      )
    ).rows;
    if (rows.length === 0) return false;

    await this.send(trx, manifest);
    return true;
  }

  /**
   * Queues a new scan of an image manifest whatever its earlier result.
   * Returns false, and queues nothing, while another run holds the scan with
   * a lease that has not expired.
   */
  async rescan(trx: Knex.Transaction, manifest: PushedManifest): Promise<boolean> {
    const rows: Array<{ digest: string }> = (
      await trx.raw(
        `insert into scans (digest, media_type, state) values (?, ?, 'queued')
         on conflict (digest) do update set state = 'queued', error = null, attempts = 0, lease_owner = null, lease_expires_at = null,
             queued_at = now(), started_at = null, finished_at = null, updated_at = now()
           where not (scans.state = 'scanning' and scans.lease_expires_at > now())
         returning digest`,
        [manifest.digest, manifest.mediaType],
      )
    ).rows;
    if (rows.length === 0) return false;

    await this.send(trx, manifest);
    return true;
  }

  /**
   * Queues again every scan whose run stopped renewing its lease, as a killed
   * process leaves it, so the scan resumes without waiting for the job's own
   * expiry. Returns the digests queued again.
   */
  async recoverAbandoned(db: Knex): Promise<string[]> {
    return db.transaction(async (trx) => {
      const rows: Array<{ digest: string }> = await trx('scans').where({ state: 'scanning' }).andWhere('lease_expires_at', '<=', trx.fn.now()).forUpdate().skipLocked().select('digest');
      for (const row of rows) {
        await trx('scans').where({ digest: row.digest }).update({ state: 'queued', lease_owner: null, lease_expires_at: null, updated_at: trx.fn.now() });
        await this.queue.send<ScanJobData>(SCAN_JOB, { digest: row.digest }, { transaction: trx, expireInSeconds: MIN_SCAN_EXPIRY_SECONDS });
      }
      return rows.map((row) => row.digest);
    });
  }

  /** Wakes this process's idle scan workers, after the transaction that queued a scan committed. */
  notify(): void {
    if (this.queue.hasWorkers) this.queue.notify(SCAN_JOB);
  }

  private async send(trx: Knex.Transaction, manifest: PushedManifest): Promise<void> {
    const blobBytes = manifest.blobs.reduce((sum, blob) => sum + blob.size, 0);
    await this.queue.send<ScanJobData>(SCAN_JOB, { digest: manifest.digest }, { transaction: trx, expireInSeconds: scanExpirySeconds(blobBytes) });
  }
}
