import type { ImportRunner } from '../upstream/import-runner.js';
import { IMPORT_JOB, type ImportJobData } from '../upstream/imports.js';
import type { JobQueue } from './queue.js';

/** Retry and time limits of import jobs. */
export interface ImportJobSettings {
  /** Retries after a failed attempt. */
  retryLimit: number;
  /** Delay before the first retry, in seconds; later ones back off exponentially. */
  retryDelaySeconds: number;
  /** Maximum duration of one attempt, in seconds. An attempt whose process died is retried after this time. */
  expireInSeconds: number;
  /** Imports one process runs at once. */
  concurrency: number;
}

/**
 * Defaults for import jobs. NOTE: four hours per attempt is an estimate for
 * multi-gigabyte images over slow links. It is also how long an attempt cut
 * off by a crash waits before another replica retries it.
 */
export const DEFAULT_IMPORT_JOB_SETTINGS: ImportJobSettings = { retryLimit: 3, retryDelaySeconds: 30, expireInSeconds: 4 * 3600, concurrency: 2 };

/** Adds the import job to a queue. */
export function defineImportJob(queue: JobQueue, runner: ImportRunner, settings: ImportJobSettings = DEFAULT_IMPORT_JOB_SETTINGS): void {
  queue.define<ImportJobData>({
    name: IMPORT_JOB,
    ...settings,
    handler: (run, signal) => runner.run(run, signal),
  });
}
