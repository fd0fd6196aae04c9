import express, { type Request } from 'express';
import type { Knex } from 'knex';
import type pino from 'pino';
import type { Config } from './config.js';
import type { BlobStore } from './storage/blob-store.js';
import { allowAllPullGate, type PullGate } from './policy/pull-gate.js';
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

export interface AppDependencies {
  config: Pick<Config, 'publicUrl' | 'trustedProxies'>;
  db: Knex;
  store: BlobStore;
  logger: pino.Logger;
  auth: AuthServices;
  gate?: PullGate;
  events?: RegistryEventSink;
}

export interface App {
  express: express.Express;
  uploads: UploadService;
}

/** Composition root: wires the domain services to the HTTP routes. */
export function createApp(dependencies: AppDependencies): App {
  const { config, db, store, logger, auth } = dependencies;
  const gate = dependencies.gate ?? allowAllPullGate;
  const events = dependencies.events ?? logEventSink;

  const uploads = new UploadService({ db, store, events, gate, logger });
  const services = {
    db,
    uploads,
    blobs: new BlobService({ db, store, events, gate }),
    manifests: new ManifestService({ db, events, gate }),
    // X-Forwarded-* reach req.protocol and req.host only through the trusted proxies set below.
    baseUrl: (request: Request) => config.publicUrl ?? `${request.protocol}://${request.host}`,
  };
  const registryAuth = { authenticator: auth.authenticator, service: auth.service, baseUrl: services.baseUrl };

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
      contextOf(request, response).logger.error({ err: error }, 'readiness check failed: the database did not answer');
      response.status(503).json({ status: 'unavailable' });
    }
  });
  app.use(createTokenRouter(auth.issuer, auth.tokens));
  app.use('/v2', createRegistryRouter(services, registryAuth));
  app.use(errorHandler);
  return { express: app, uploads };
}
