import type { Request, Response } from 'express';
import type { Knex } from 'knex';
import type { BlobService } from '../blobs.js';
import type { ManifestService } from '../manifests.js';
import type { UploadService, ChunkInput } from '../uploads.js';
import type { MatchedRoute } from '../routes.js';
import { RegistryError } from '../../errors.js';
import { parseContentRange } from '../ranges.js';

/** Services the /v2 handlers call; handlers hold no rules of their own. */
export interface RegistryServices {
  db: Knex;
  blobs: BlobService;
  manifests: ManifestService;
  uploads: UploadService;
  /** Returns the external base URL for Location headers, without a trailing slash. */
  baseUrl(request: Request): string;
}

export type RouteHandler = (request: Request, response: Response, route: MatchedRoute, services: RegistryServices) => Promise<void>;

/** Returns a query parameter given once, null when absent; a repeated parameter is invalid. */
export function singleQuery(request: Request, name: string): string | null {
  const value = request.query[name];
  if (value === undefined) return null;
  if (typeof value === 'string') return value;
  throw new RegistryError('UNSUPPORTED', `query parameter ${name} must be given once`, { parameter: name }, 400);
}

/** Returns the declared Content-Length, null when absent; a malformed value is SIZE_INVALID. */
export function contentLengthOf(request: Request): number | null {
  const header = request.get('content-length');
  if (header === undefined) return null;
  if (!/^\d{1,15}$/.test(header)) throw new RegistryError('SIZE_INVALID', 'invalid Content-Length header', { contentLength: header.slice(0, 40) });
  return Number(header);
}

/** Returns whether the request carries a body (a positive Content-Length or chunked transfer encoding). */
export function hasBody(request: Request): boolean {
  const length = contentLengthOf(request);
  if (length !== null) return length > 0;
  return request.get('transfer-encoding') !== undefined;
}

/** Describes the request body as an upload chunk. */
export function chunkOf(request: Request): ChunkInput {
  return { body: request, contentLength: contentLengthOf(request), range: parseContentRange(request.get('content-range')) };
}
