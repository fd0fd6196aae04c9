import { OPERATIONS } from '../../operations.js';
import { contextOf, describeRequest } from '../../http/request-context.js';
import { listRepositories, listTags, MAX_PAGE_SIZE, parsePageRequest, type Page } from '../listings.js';
import { MEDIA_TYPES } from '../media-types.js';
import { singleQuery, type RouteHandler } from './shared.js';

function nextLink(path: string, requestedSize: number | null, page: Page): string | null {
  if (page.next === null) return null;
  const query = new URLSearchParams({ n: String(requestedSize ?? MAX_PAGE_SIZE), last: page.next });
  return `<${path}?${query.toString()}>; rel="next"`;
}

/** GET /v2/<name>/tags/list, paginated with n and last. */
export const getTags: RouteHandler = async (request, response, route, services) => {
  describeRequest(response, OPERATIONS.tagsList, { repository: route.name });
  const pageRequest = parsePageRequest(request.query.n, request.query.last);
  const page = await listTags(services.db, route.name, pageRequest);
  const link = nextLink(`/v2/${route.name}/tags/list`, pageRequest.n, page);
  if (link) response.set('Link', link);
  response.status(200).json({ name: route.name, tags: page.items });
};

/** GET /v2/_catalog, paginated with n and last. */
export const getCatalog: RouteHandler = async (request, response, _route, services) => {
  describeRequest(response, OPERATIONS.catalog);
  const pageRequest = parsePageRequest(request.query.n, request.query.last);
  const page = await listRepositories(services.db, pageRequest);
  const link = nextLink('/v2/_catalog', pageRequest.n, page);
  if (link) response.set('Link', link);
  response.status(200).json({ repositories: page.items });
};

/** GET /v2/<name>/referrers/<digest>, optionally filtered by artifactType. */
export const getReferrers: RouteHandler = async (request, response, route, services) => {
  describeRequest(response, OPERATIONS.referrersList, { repository: route.name, digest: route.reference });
  const artifactType = singleQuery(request, 'artifactType');
  const result = await services.manifests.referrers(contextOf(request, response), route.name, route.reference, artifactType === '' ? null : artifactType);
  if (result.filtered) response.set('OCI-Filters-Applied', 'artifactType');
  // A Buffer body keeps Express from appending "; charset=utf-8" to the media type.
  response.status(200).set('Content-Type', MEDIA_TYPES.ociIndex).send(Buffer.from(JSON.stringify(result.index)));
};
