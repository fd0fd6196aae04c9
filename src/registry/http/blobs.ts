import { pipeline } from 'node:stream/promises';
import { OPERATIONS } from '../../operations.js';
import { contextOf, describeRequest } from '../../http/request-context.js';
import { RegistryError } from '../../errors.js';
import { parseRangeHeader } from '../ranges.js';
import type { RouteHandler } from './shared.js';

/** GET and HEAD /v2/<name>/blobs/<digest>, with single-range support. */
export const getBlob: RouteHandler = async (request, response, route, services) => {
  const isHead = request.method === 'HEAD';
  describeRequest(response, isHead ? OPERATIONS.blobHead : OPERATIONS.blobGet, { repository: route.name, digest: route.reference });
  const context = contextOf(request, response);
  const blob = await services.blobs.find(context, route.name, route.reference, { head: isHead });

  response.set('Docker-Content-Digest', blob.digest).set('Content-Type', 'application/octet-stream').set('Accept-Ranges', 'bytes').set('ETag', `"${blob.digest}"`);
  const range = parseRangeHeader(request.get('range'), blob.size);
  if (range.kind === 'unsatisfiable') {
    response.set('Content-Range', `bytes */${blob.size}`);
    throw new RegistryError('RANGE_INVALID', `requested range is outside the blob's ${blob.size} bytes`, { size: blob.size }, 416);
  }

  if (range.kind === 'range') {
    response.status(206).set('Content-Range', `bytes ${range.range.start}-${range.range.end}/${blob.size}`).set('Content-Length', String(range.range.end - range.range.start + 1));
  } else {
    response.status(200).set('Content-Length', String(blob.size));
  }
  if (isHead) {
    response.end();
    return;
  }

  const body = await services.blobs.open(context, route.name, blob, range.kind === 'range' ? range.range : null);
  response.locals.bytesSent = blob.size;
  // Once headers are out, a storage failure can only cut the connection, which
  // the client sees as a short body.
  try {
    await pipeline(body, response);
  } catch (error) {
    // A client that closes the connection early (curl after the last byte, a cancelled pull) is not a server fault.
    if ((error as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE' || !response.destroyed) throw error;
    contextOf(request, response).logger.debug({ digest: blob.digest }, 'client closed the connection before the blob was sent');
  }
};

/** DELETE /v2/<name>/blobs/<digest>: unlink the blob from this repository. */
export const deleteBlob: RouteHandler = async (request, response, route, services) => {
  describeRequest(response, OPERATIONS.blobDelete, { repository: route.name, digest: route.reference });
  await services.blobs.unlink(contextOf(request, response), route.name, route.reference);
  response.status(202).set('Content-Length', '0').end();
};
