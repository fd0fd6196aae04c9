import { isIP } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { AUDIT_DECISIONS, type AuditEvent } from '../audit/chain.js';
import { exposureOf, pullsOf } from '../audit/exposure.js';
import { InvalidAuditQueryError, MAX_QUERY_LIMIT, queryEvents, streamEvents, type AuditFilter } from '../audit/query.js';
import { AUDIT_ACTIONS } from '../audit/registry-events.js';
import { verifyChain } from '../audit/verify.js';
import type { Authenticator } from '../auth/authenticator.js';
import { globalPermissions } from '../auth/permissions.js';
import { contextOf, describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import { isValidName, isValidTag, MAX_NAME_LENGTH, parseDigest } from '../registry/reference.js';
import { authenticate, principalOf } from './authentication.js';
import { CSV_HEADER, csvRow, eventView, exposureView, ndjsonLine, pullsView } from './audit-views.js';
import { ApiError } from './errors.js';
import { parseQuery } from './validation.js';

export interface AuditApiDeps {
  db: Knex;
  authenticator: Authenticator;
}

/** Media types of GET /audit/events: a JSON page, or an export of every matching event. */
const EVENT_MEDIA_TYPES = ['application/json', 'text/csv', 'application/x-ndjson'] as const;

/** Bytes an export collects before it writes them to the response. */
const EXPORT_CHUNK_BYTES = 64 * 1024;

/** Most actions one `action` parameter may list. */
const MAX_ACTIONS = 50;

/** Action names: dot-separated lowercase words, such as `manifest.pull`. */
const ACTION_PATTERN = /^[a-z]+(?:[.-][a-z]+)+$/;

/** Returns whether a string contains a C0 control character or DEL. */
function hasControlCharacter(value: string): boolean {
  return [...value].some((character) => character.charCodeAt(0) < 0x20 || character.charCodeAt(0) === 0x7f);
}

const repositorySchema = z
  .string()
  .max(MAX_NAME_LENGTH)
  .refine(isValidName, 'invalid repository name: use lowercase letters, digits and the separators ".", "_", "__", "-", with "/" between path components');

const digestSchema = z.string().refine((value) => {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}, 'invalid digest: expected sha256:<64 lowercase hex digits> or sha512:<128 lowercase hex digits>');

const timeSchema = z.iso
  .datetime({ offset: true, error: 'invalid time: expected RFC 3339 with a time zone, such as 2024-05-01T00:00:00Z' })
  .transform((value) => new Date(value));

/** Free text such as an actor subject: no control characters, which PostgreSQL text cannot store (NUL) and logs should not carry. */
const plainText = (maximum: number) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(maximum)
    .refine((value) => !hasControlCharacter(value), 'must not contain control characters');

const actionListSchema = z
  .string()
  .max(2000)
  .refine((value) => {
    const actions = value.split(',');
    return actions.length <= MAX_ACTIONS && actions.every((action) => ACTION_PATTERN.test(action) && AUDIT_ACTIONS.includes(action));
  }, `expected one action or a comma-separated list of at most ${MAX_ACTIONS} of ${AUDIT_ACTIONS.join(', ')}`)
  .transform((value) => value.split(','));

const filterFields = {
  repository: repositorySchema.optional(),
  repositoryPrefix: plainText(MAX_NAME_LENGTH).optional(),
  digest: digestSchema.optional(),
  tag: z.string().refine(isValidTag, 'invalid tag: up to 128 letters, digits, "_", "." and "-", not starting with "." or "-"').optional(),
  actor: plainText(256).optional(),
  action: actionListSchema.optional(),
  decision: z.enum(AUDIT_DECISIONS, { error: `expected one of ${AUDIT_DECISIONS.join(', ')}` }).optional(),
  clientAddress: z.string().refine((value) => isIP(value) !== 0, 'expected an IPv4 or IPv6 address').optional(),
  from: timeSchema.optional(),
  to: timeSchema.optional(),
};

const eventsQuery = z.object({
  ...filterFields,
  limit: z.coerce.number().int().min(1).max(MAX_QUERY_LIMIT).optional(),
  cursor: z.string().max(200).optional(),
});

const pullsQuery = z.object({ digest: digestSchema, repository: repositorySchema.optional() });

const exposureQuery = z.object({ repository: repositorySchema, digest: digestSchema });

const verifyQuery = z.object({ from: timeSchema.optional(), to: timeSchema.optional() });

/**
 * Rejects query parameters that the endpoint does not know, naming each, so
 * that a misspelt filter is an error instead of a silently wider result.
 */
function rejectUnknownParameters(request: Request, known: readonly string[]): void {
  const unknown = Object.keys(request.query as Record<string, unknown>).filter((name) => !known.includes(name));
  if (unknown.length === 0) return;
  const problems = unknown.slice(0, 20).map((name) => ({ field: name.slice(0, 100), message: `unknown query parameter; use ${known.join(', ')}` }));
  throw new ApiError('INVALID_REQUEST', problems.map((problem) => `${problem.field}: ${problem.message}`).join('; '), { problems });
}

/** Parses the query with the schema after rejecting unknown parameters. */
function parseParameters<T>(schema: z.ZodType<T> & { shape: object }, request: Request): T {
  rejectUnknownParameters(request, Object.keys(schema.shape));
  return parseQuery(schema, request);
}

function checkTimeRange(range: { from?: Date; to?: Date }): void {
  if (range.from && range.to && range.from >= range.to) {
    throw new ApiError('INVALID_REQUEST', 'from: must be earlier than to', { problems: [{ field: 'from', message: 'must be earlier than to' }] });
  }
}

/** Returns the AuditFilter of parsed event query parameters. */
function filterOf(query: z.infer<typeof eventsQuery>): AuditFilter {
  const { action, limit: _limit, cursor: _cursor, ...rest } = query;
  return { ...rest, ...(action ? { actions: action } : {}) };
}

function requireAuditRead(request: Request, response: Response, next: NextFunction): void {
  const principal = principalOf(request, response);
  if (!globalPermissions(principal.grants, principal.groups).has('audit:read')) {
    throw new ApiError('FORBIDDEN', `${principal.subject} lacks the audit:read permission, which the audit API needs: ask an administrator to add the account to the auditors group`, {
      required: 'audit:read',
    });
  }
  next();
}

/** Returns the Link header of the next page: this request's path and parameters with the next cursor. */
function nextLink(request: Request, cursor: string): string {
  const parameters = new URLSearchParams();
  for (const [name, value] of Object.entries(request.query as Record<string, string>)) {
    if (name !== 'cursor') parameters.set(name, value);
  }
  parameters.set('cursor', cursor);
  return `<${request.originalUrl.split('?', 1)[0]}?${parameters.toString()}>; rel="next"`;
}

/** Groups export lines into chunks of about EXPORT_CHUNK_BYTES, so a long export is not written one short line at a time. */
async function* exportChunks(header: string, first: AuditEvent | undefined, rest: AsyncIterator<AuditEvent>, lineOf: (event: AuditEvent) => string): AsyncGenerator<string> {
  let chunk = header;
  let next: IteratorResult<AuditEvent, void> = first === undefined ? { done: true, value: undefined } : { done: false, value: first };
  while (!next.done) {
    chunk += lineOf(next.value);
    if (chunk.length >= EXPORT_CHUNK_BYTES) {
      yield chunk;
      chunk = '';
    }
    next = await rest.next();
  }
  if (chunk !== '') yield chunk;
}

/**
 * Streams every event that matches the filter as CSV or NDJSON. The first
 * batch is read before the status line is sent, so a failing query still
 * gets an error response. After that, pipeline() writes only as fast as the
 * client reads, and a client that disconnects destroys the source, which
 * ends the generator and its queries.
 */
async function sendExport(request: Request, response: Response, db: Knex, filter: AuditFilter, mediaType: 'text/csv' | 'application/x-ndjson'): Promise<void> {
  const events = streamEvents(db, filter);
  const first = await events.next();

  const csv = mediaType === 'text/csv';
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  response.status(200).set({
    'Content-Type': csv ? 'text/csv; charset=utf-8; header=present' : 'application/x-ndjson; charset=utf-8',
    'Content-Disposition': `attachment; filename="audit-events-${stamp}.${csv ? 'csv' : 'ndjson'}"`,
  });
  const chunks = exportChunks(csv ? CSV_HEADER : '', first.done ? undefined : first.value, events, csv ? csvRow : ndjsonLine);

  try {
    await pipeline(Readable.from(chunks), response);
  } catch (error) {
    const logger = contextOf(request, response).logger;
    if ((error as { code?: unknown }).code === 'ERR_STREAM_PREMATURE_CLOSE') logger.info('audit export stopped: the client disconnected');
    else logger.error({ err: error }, 'audit export failed after it started; the response was cut off');
  } finally {
    await events.return(undefined);
  }
}

/** Routes under /audit, each for holders of audit:read only. */
function createAuditRoutes(db: Knex): express.Router {
  const router = express.Router();

  router.get('/events', async (request: Request, response: Response) => {
    const mediaType = request.accepts([...EVENT_MEDIA_TYPES]) as (typeof EVENT_MEDIA_TYPES)[number] | false;
    describeRequest(response, mediaType === 'application/json' ? OPERATIONS.auditEvents : OPERATIONS.auditExport);
    const query = parseParameters(eventsQuery, request);
    checkTimeRange(query);
    response.vary('Accept');

    if (mediaType === false) {
      throw new ApiError('NOT_ACCEPTABLE', `none of the media types in Accept can be returned: use ${EVENT_MEDIA_TYPES.join(', ')}`, { supported: EVENT_MEDIA_TYPES });
    }
    if (mediaType !== 'application/json') {
      const paging = (['limit', 'cursor'] as const).filter((name) => query[name] !== undefined);
      if (paging.length > 0) {
        const problems = paging.map((name) => ({ field: name, message: `applies only to JSON pages; an export of ${mediaType} returns every matching event` }));
        throw new ApiError('INVALID_REQUEST', problems.map((problem) => `${problem.field}: ${problem.message}`).join('; '), { problems });
      }
      await sendExport(request, response, db, filterOf(query), mediaType);
      return;
    }

    const page = await queryEvents(db, { ...filterOf(query), limit: query.limit, cursor: query.cursor ?? null });
    if (page.nextCursor !== null) response.set('Link', nextLink(request, page.nextCursor));
    response.json({ events: page.events.map(eventView), nextCursor: page.nextCursor });
  });

  router.get('/pulls', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.auditPulls);
    const query = parseParameters(pullsQuery, request);
    describeRequest(response, OPERATIONS.auditPulls, { digest: query.digest, ...(query.repository ? { repository: query.repository } : {}) });
    response.json(pullsView(await pullsOf(db, query)));
  });

  router.get('/exposure', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.auditExposure);
    const query = parseParameters(exposureQuery, request);
    describeRequest(response, OPERATIONS.auditExposure, { repository: query.repository, digest: query.digest });
    response.json(exposureView(await exposureOf(db, query)));
  });

  router.get('/verify', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.auditVerify);
    const query = parseParameters(verifyQuery, request);
    checkTimeRange(query);
    response.json(await verifyChain(db, query));
  });

  return router;
}

function notFound(request: Request): never {
  throw new ApiError('NOT_FOUND', `no management API endpoint for ${request.method} ${request.originalUrl.split('?', 1)[0]?.slice(0, 200)}`);
}

function noStore(_request: Request, response: Response, next: NextFunction): void {
  // Every query may find new events, so no cache may keep a response.
  response.set('Cache-Control', 'no-store');
  next();
}

function translateAuditErrors(error: unknown, _request: Request, _response: Response, next: NextFunction): void {
  if (error instanceof InvalidAuditQueryError) {
    next(new ApiError('INVALID_REQUEST', error.message, { problems: [{ field: error.field, message: error.problem }] }));
    return;
  }
  next(error);
}

/**
 * Builds the audit routes of the management API, to be mounted at /api/v1:
 * `/audit/events` (a page of events as JSON, or every matching event as CSV
 * or NDJSON), `/audit/pulls`, `/audit/exposure` and `/audit/verify`. Each
 * request is authenticated, and needs the global audit:read permission
 * (membership of the auditors group), which `admin` does not imply. Reading
 * the trail is not itself recorded on it. Requests for other paths pass
 * through untouched.
 */
export function createAuditRouter(deps: AuditApiDeps): express.Router {
  const router = express.Router();
  router.use('/audit', noStore, authenticate(deps.authenticator), requireAuditRead, createAuditRoutes(deps.db), notFound);
  router.use(translateAuditErrors);
  return router;
}
