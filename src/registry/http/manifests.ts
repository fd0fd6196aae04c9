import type { Request } from 'express';
import { OPERATIONS } from '../../operations.js';
import { contextOf, describeRequest } from '../../http/request-context.js';
import { RegistryError } from '../../errors.js';
import { MAX_MANIFEST_BYTES } from '../manifests.js';
import { contentLengthOf, type RouteHandler } from './shared.js';

function tooLarge(size: number | null): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `manifest is larger than the limit of ${MAX_MANIFEST_BYTES} bytes`, { limit: MAX_MANIFEST_BYTES, ...(size !== null ? { size } : {}) }, 413);
}

/** Reads a manifest body, refusing more than MAX_MANIFEST_BYTES before buffering it. */
async function readManifestBody(request: Request): Promise<Buffer> {
  const declared = contentLengthOf(request);
  if (declared !== null && declared > MAX_MANIFEST_BYTES) throw tooLarge(declared);

  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of request) {
    total += (chunk as Buffer).length;
    if (total > MAX_MANIFEST_BYTES) throw tooLarge(null);
    chunks.push(chunk as Buffer);
  }
  if (declared !== null && total !== declared) {
    throw new RegistryError('SIZE_INVALID', `Content-Length is ${declared} bytes but the body has ${total}`, { declared, received: total });
  }
  return Buffer.concat(chunks);
}

/** GET and HEAD /v2/<name>/manifests/<reference>: the stored bytes with their stored media type, whatever the Accept header lists. */
export const getManifest: RouteHandler = async (request, response, route, services) => {
  const isHead = request.method === 'HEAD';
  describeRequest(response, isHead ? OPERATIONS.manifestHead : OPERATIONS.manifestGet, { repository: route.name, reference: route.reference });
  const manifest = await services.manifests.get(contextOf(request, response), route.name, route.reference, { head: isHead });
  response
    .status(200)
    .set('Content-Type', manifest.mediaType)
    .set('Docker-Content-Digest', manifest.digest)
    .set('Content-Length', String(manifest.size))
    .set('ETag', `"${manifest.digest}"`);
  if (isHead) {
    response.end();
    return;
  }
  response.end(manifest.content);
};

/** PUT /v2/<name>/manifests/<reference>. */
export const putManifest: RouteHandler = async (request, response, route, services) => {
  describeRequest(response, OPERATIONS.manifestPut, { repository: route.name, reference: route.reference });
  const body = await readManifestBody(request);
  const result = await services.manifests.put(contextOf(request, response), route.name, route.reference, body, request.get('content-type'));
  response.status(201).set('Location', `${services.baseUrl(request)}/v2/${route.name}/manifests/${result.digest}`).set('Docker-Content-Digest', result.digest).set('Content-Length', '0');
  if (result.subject !== null) response.set('OCI-Subject', result.subject);
  response.end();
};

/** DELETE /v2/<name>/manifests/<reference>: a digest deletes the manifest, a tag deletes the tag. */
export const deleteManifest: RouteHandler = async (request, response, route, services) => {
  describeRequest(response, OPERATIONS.manifestDelete, { repository: route.name, reference: route.reference });
  await services.manifests.delete(contextOf(request, response), route.name, route.reference);
  response.status(202).set('Content-Length', '0').end();
};
