import type { Response } from 'express';
import { RegistryError } from '../../errors.js';
import { OPERATIONS } from '../../operations.js';
import { contextOf, describeRequest } from '../../http/request-context.js';
import { uploadRangeHeader } from '../ranges.js';
import type { UploadSession } from '../uploads.js';
import type { Caller } from '../../auth/authenticator.js';
import { chunkOf, hasBody, singleQuery, type RegistryServices, type RouteHandler } from './shared.js';

function sendSession(response: Response, services: RegistryServices, baseUrl: string, session: UploadSession, status: 202 | 204): void {
  response
    .status(status)
    .set('Location', `${baseUrl}/v2/${session.repository}/blobs/uploads/${session.id}`)
    .set('Range', uploadRangeHeader(session.size))
    .set('Docker-Upload-UUID', session.id)
    .set('Content-Length', '0')
    .end();
}

function sendBlobCreated(response: Response, baseUrl: string, repository: string, digest: string): void {
  response.status(201).set('Location', `${baseUrl}/v2/${repository}/blobs/${digest}`).set('Docker-Content-Digest', digest).set('Content-Length', '0').end();
}

/** POST /v2/<name>/blobs/uploads/: mount, monolithic upload, or a new session. */
export const startUpload: RouteHandler = async (request, response, route, services) => {
  describeRequest(response, OPERATIONS.uploadStart, { repository: route.name });
  const context = contextOf(request, response);
  const baseUrl = services.baseUrl(request);
  const mount = singleQuery(request, 'mount');
  const digest = singleQuery(request, 'digest');

  if (mount !== null) {
    const caller = response.locals.caller as Caller;
    const mayPullSource = (source: string) => caller.allows({ type: 'repository', name: source, action: 'pull' });
    const mounted = await services.uploads.mount(context, route.name, mount, singleQuery(request, 'from'), mayPullSource);
    if (mounted) {
      sendBlobCreated(response, baseUrl, route.name, mount);
      return;
    }
  }

  if (digest !== null && mount === null) {
    const blob = await services.uploads.uploadMonolithic(context, route.name, digest, chunkOf(request));
    sendBlobCreated(response, baseUrl, route.name, blob.digest);
    return;
  }

  if (hasBody(request)) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', 'a POST with a body needs the digest query parameter; to upload in chunks, POST without a body and PATCH the session', undefined);
  }
  const session = await services.uploads.start(route.name);
  sendSession(response, services, baseUrl, session, 202);
};

/** GET /v2/<name>/blobs/uploads/<id>: the session's progress. */
export const uploadStatus: RouteHandler = async (request, response, route, services) => {
  describeRequest(response, OPERATIONS.uploadStatus, { repository: route.name, uploadId: route.reference });
  const session = await services.uploads.status(route.name, route.reference);
  sendSession(response, services, services.baseUrl(request), session, 204);
};

/** PATCH /v2/<name>/blobs/uploads/<id>: append a chunk. */
export const patchUpload: RouteHandler = async (request, response, route, services) => {
  describeRequest(response, OPERATIONS.uploadPatch, { repository: route.name, uploadId: route.reference });
  const session = await services.uploads.append(route.name, route.reference, chunkOf(request));
  sendSession(response, services, services.baseUrl(request), session, 202);
};

/** PUT /v2/<name>/blobs/uploads/<id>?digest=: the optional last chunk, then commit. */
export const finishUpload: RouteHandler = async (request, response, route, services) => {
  describeRequest(response, OPERATIONS.uploadFinish, { repository: route.name, uploadId: route.reference });
  const digest = singleQuery(request, 'digest');
  if (digest === null) throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required to finish an upload', { uploadId: route.reference });
  const chunk = hasBody(request) ? chunkOf(request) : null;
  const blob = await services.uploads.finish(contextOf(request, response), route.name, route.reference, digest, chunk);
  sendBlobCreated(response, services.baseUrl(request), route.name, blob.digest);
};

/** DELETE /v2/<name>/blobs/uploads/<id>: cancel the session. */
export const cancelUpload: RouteHandler = async (_request, response, route, services) => {
  describeRequest(response, OPERATIONS.uploadCancel, { repository: route.name, uploadId: route.reference });
  await services.uploads.cancel(route.name, route.reference);
  response.status(204).end();
};
