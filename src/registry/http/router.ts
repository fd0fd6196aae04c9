import express, { type NextFunction, type Request, type Response } from 'express';
import { RegistryError } from '../../errors.js';
import { OPERATIONS } from '../../operations.js';
import { describeRequest } from '../../http/request-context.js';
import { checkMethod, splitRoute, validateRouteName, type RouteKind } from '../routes.js';
import { upstreamDenialMessage, type UpstreamBlocklist } from '../../upstream/blocklist.js';
import { MAX_NAME_LENGTH } from '../reference.js';
import { deleteBlob, getBlob } from './blobs.js';
import { getCatalog, getReferrers, getTags } from './listings.js';
import { deleteManifest, getManifest, putManifest } from './manifests.js';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './uploads.js';
import type { RegistryServices, RouteHandler } from './shared.js';
import { authorizeRegistryRequest, type RegistryAuthOptions } from '../../auth/http/registry-auth.js';

const baseHandler: RouteHandler = async (_request, response) => {
  describeRequest(response, OPERATIONS.base);
  response.status(200).json({});
};

const HANDLERS: Record<RouteKind, Partial<Record<string, RouteHandler>>> = {
  base: { GET: baseHandler },
  catalog: { GET: getCatalog },
  tags: { GET: getTags },
  manifest: { GET: getManifest, PUT: putManifest, DELETE: deleteManifest },
  uploadStart: { POST: startUpload },
  upload: { GET: uploadStatus, PATCH: patchUpload, PUT: finishUpload, DELETE: cancelUpload },
  blob: { GET: getBlob, DELETE: deleteBlob },
  referrers: { GET: getReferrers },
};

/**
 * Builds the /v2 router: the OCI Distribution API, behind authentication,
 * with names of public registries denied first. Errors go to the shared
 * error handler.
 */
export function createRegistryRouter(services: RegistryServices, auth: RegistryAuthOptions, blocklist: UpstreamBlocklist): express.Router {
  const router = express.Router();
  router.use((_request: Request, response: Response, next: NextFunction) => {
    response.set('Docker-Distribution-API-Version', 'registry/2.0');
    next();
  });

  router.use(async (request: Request, response: Response) => {
    const route = splitRoute(request.path);
    if (route === null) throw new RegistryError('UNSUPPORTED', 'no OCI Distribution endpoint at this path', { path: request.path.slice(0, 200) }, 404);
    // Names of public registries are denied before the name grammar, which a host:port fails, and before authentication.
    const block = blocklist.check(route.name);
    if (block !== null) {
      const name = route.name.slice(0, MAX_NAME_LENGTH);
      throw new RegistryError('DENIED', upstreamDenialMessage(name, block), { repository: name, registry: block.registry });
    }
    validateRouteName(route);
    checkMethod(route, request.method);
    await authorizeRegistryRequest(request, response, route, auth);
    const handler = HANDLERS[route.kind][request.method === 'HEAD' ? 'GET' : request.method];
    if (!handler) throw new Error(`no handler for ${request.method} ${route.kind}`);
    await handler(request, response, route, services);
  });
  return router;
}
