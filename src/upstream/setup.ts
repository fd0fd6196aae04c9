import type { Knex } from 'knex';
import type pino from 'pino';
import type { RegistryEventSink } from '../audit/registry-events.js';
import { defineImportJob, type ImportJobSettings } from '../jobs/import-job.js';
import type { JobQueue } from '../jobs/queue.js';
import type { ManifestService } from '../registry/manifests.js';
import type { UploadService } from '../registry/uploads.js';
import { ImportRunner } from './import-runner.js';
import { ImportService } from './imports.js';
import { UpstreamService } from './upstreams.js';

export interface ImportServicesDeps {
  db: Knex;
  events: RegistryEventSink;
  logger: pino.Logger;
  queue: JobQueue;
  uploads: UploadService;
  manifests: ManifestService;
  jobSettings?: ImportJobSettings;
}

/** Builds the allowlist and import services and adds the import job to the queue, which must not have started yet. */
export function createImportServices(deps: ImportServicesDeps): { upstreams: UpstreamService; imports: ImportService } {
  const { db, events, logger, queue, uploads, manifests } = deps;
  const upstreams = new UpstreamService({ db, events });
  const imports = new ImportService({ db, events, queue, upstreams });
  defineImportJob(queue, new ImportRunner({ db, events, upstreams, uploads, manifests, logger }), deps.jobSettings);
  return { upstreams, imports };
}
