import express, { type Request } from 'express';
import type { Knex } from 'knex';
import type pino from 'pino';
import type { Config } from './config.js';
import type { BlobStore } from './storage/blob-store.js';
import { CertificationGate } from './policy/certification-gate.js';
import { attachmentRules } from './policy/attachments.js';
import { UpstreamBlocklist } from './upstream/blocklist.js';
import { logEventSink, type RegistryEventSink } from './audit/registry-events.js';
import { BlobService } from './registry/blobs.js';
import { ManifestService } from './registry/manifests.js';
import { UploadService } from './registry/uploads.js';
import { createRegistryRouter } from './registry/http/router.js';
import { errorHandler } from './http/error-handler.js';
import { createRequestLogger } from './http/request-logger.js';
import { contextOf, describeRequest } from './http/request-context.js';
import { OPERATIONS } from './operations.js';
import type { AuthServices } from './auth/setup.js';
import { createTokenRouter } from './auth/http/token-routes.js';
import { createManagementRouter } from './api/router.js';
import { createCertificationRouter } from './api/certification-router.js';
import { createAuditRouter } from './api/audit-router.js';
import { createImportApiRouter } from './api/import-router.js';
import type { JobQueue } from './jobs/queue.js';
import { createImportServices } from './upstream/setup.js';
import { createScanServices, type ScanSettings } from './scan/setup.js';
import { createScanApiRouter } from './api/scan-router.js';

export interface AppDependencies {
  config: Pick<Config, 'publicUrl' | 'trustedProxies' | 'attachments' | 'blockedRegistries'>;
  db: Knex;
  store: BlobStore;
  logger: pino.Logger;
  auth: AuthServices;
  events?: RegistryEventSink;
  /** Background jobs; createApp adds its job definitions, and the caller starts the queue afterwards. */
  jobs: JobQueue;
  /** Scan job settings that differ from the defaults. */
  scanSettings?: ScanSettings;
}

export interface App {
  express: express.Express;
  uploads: UploadService;
  /** Queues again the secret scans whose runs died; returns their digests. */
  recoverScans(): Promise<string[]>;
}

/** Composition root: wires the domain services to the HTTP routes. */
export function createApp(dependencies: AppDependencies): App {
  const { config, db, store, logger, auth } = dependencies;
  // Every pull goes through the certification gate, which the app always builds itself.
  const gate = new CertificationGate(db, attachmentRules(config.attachments.mediaTypes, config.attachments.maxBytes), store);
  const events = dependencies.events ?? logEventSink;

  const uploads = new UploadService({ db, store, events, gate, logger });
  const scans = createScanServices({ db, store, events, logger, queue: dependencies.jobs, ...(dependencies.scanSettings ? { settings: dependencies.scanSettings } : {}) });
  const services = {
    db,
    uploads,
    blobs: new BlobService({ db, store, events, gate }),
    manifests: new ManifestService({ db, events, gate, scans: scans.queue }),
    // X-Forwarded-* reach req.protocol and req.host only through the trusted proxies set below.
    baseUrl: (request: Request) => config.publicUrl ?? `${request.protocol}://${request.host}`,
  };
  const registryAuth = { authenticator: auth.authenticator, service: auth.service, baseUrl: services.baseUrl, events };
  const importServices = createImportServices({ db, events, logger, queue: dependencies.jobs, uploads, manifests: services.manifests });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustedProxies.length > 0 ? config.trustedProxies : false);
  app.set('query parser', 'simple');
  app.use(createRequestLogger(logger));
  app.use((request, response, next) => {
    contextOf(request, response);
    next();
  });

  app.get('/healthz', (_request, response) => {
    describeRequest(response, OPERATIONS.health);
    response.json({ status: 'ok' });
  });
  app.get('/readyz', async (request, response) => {
    describeRequest(response, OPERATIONS.health);
    try {
      await db.raw('select 1');
      response.json({ status: 'ready' });
    } catch (error) {
      contextOf(request, response).logger.error({ err: error }, 'readiness check failed: the database query failed');
      response.status(503).json({ status: 'unavailable' });
    }
  });
  app.use(createTokenRouter(auth.issuer, auth.tokens));
  app.use('/v2', createRegistryRouter(services, registryAuth, new UpstreamBlocklist(config.blockedRegistries)));
  app.use('/api/v1', createImportApiRouter({ authenticator: auth.authenticator, ...importServices }));
  // Before any other /api/v1 router that ends in a catch-all 404, which would shadow these routes.
  app.use('/api/v1', createCertificationRouter({ db, authenticator: auth.authenticator, events, logger }));
  app.use('/api/v1', createAuditRouter({ db, authenticator: auth.authenticator }));
  app.use('/api/v1', createScanApiRouter({ authenticator: auth.authenticator, scans: scans.service }));
  // Last among the /api/v1 routers, because it returns 404 for every unknown API path.
  app.use('/api/v1', createManagementRouter({ db, authenticator: auth.authenticator, events, logger }));
  app.use(errorHandler);
  return { express: app, uploads, recoverScans: () => scans.queue.recoverAbandoned(db) };
}
