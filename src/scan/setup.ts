import type { Knex } from 'knex';
import type pino from 'pino';
import type { RegistryEventSink } from '../audit/registry-events.js';
import { defineScanJob, type ScanJobSettings } from '../jobs/scan-job.js';
import type { JobQueue } from '../jobs/queue.js';
import type { BlobStore } from '../storage/blob-store.js';
import { ScanRunner, type ScanLeaseSettings } from './runner.js';
import { ImageScanner } from './scanner.js';
import { ScanQueue } from './scheduler.js';
import { ScanService } from './service.js';

/** Settings of scan jobs that differ from the defaults, such as shorter delays in tests. */
export interface ScanSettings {
  job?: ScanJobSettings;
  lease?: ScanLeaseSettings;
}

export interface ScanServicesDeps {
  db: Knex;
  store: BlobStore;
  events: RegistryEventSink;
  logger: pino.Logger;
  queue: JobQueue;
  settings?: ScanSettings;
}

/** Builds the scan queue and service and adds the scan job to the job queue, which must not have started yet. */
export function createScanServices(deps: ScanServicesDeps): { queue: ScanQueue; service: ScanService } {
  const { db, store, events, logger, queue } = deps;
  const scans = new ScanQueue(queue);
  const runner = new ScanRunner({ db, scanner: new ImageScanner({ db, store }), logger, ...(deps.settings?.lease ? { lease: deps.settings.lease } : {}) });
  defineScanJob(queue, runner, deps.settings?.job);
  return { queue: scans, service: new ScanService({ db, events, scans }) };
}
