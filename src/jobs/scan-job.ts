import type { ScanRunner } from '../scan/runner.js';
import { SCAN_JOB, type ScanJobData } from '../scan/scheduler.js';
import type { JobQueue } from './queue.js';

/** Retry limits and concurrency of scan jobs. Each job's expiry is set when it is queued, from the size of its image (see scanExpirySeconds). */
export interface ScanJobSettings {
  /** Retries after a failed attempt, including attempts that found the scan held by another run. */
  retryLimit: number;
  /** Delay before the first retry, in seconds; later ones back off exponentially. */
  retryDelaySeconds: number;
  /** Expiry of a job queued without one, in seconds. */
  expireInSeconds: number;
  /** Scans one process runs at once. */
  concurrency: number;
}

/**
 * Defaults for scan jobs: with backoff, six retries from 15 s wait about 16
 * minutes in all, longer than a lease of a dead run lasts.
 */
export const DEFAULT_SCAN_JOB_SETTINGS: ScanJobSettings = { retryLimit: 6, retryDelaySeconds: 15, expireInSeconds: 15 * 60, concurrency: 2 };

/** Adds the scan job to a queue. */
export function defineScanJob(queue: JobQueue, runner: ScanRunner, settings: ScanJobSettings = DEFAULT_SCAN_JOB_SETTINGS): void {
  queue.define<ScanJobData>({
    name: SCAN_JOB,
    ...settings,
    handler: (run, signal) => runner.run(run, signal),
  });
}
