import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { RequestContext } from '../context.js';
import type { RegistryEventSink } from '../audit/registry-events.js';
import type { InputProblem } from '../auth/account-errors.js';
import type { JobQueue } from '../jobs/queue.js';
import { ImportInputError, ImportPermissionError, ImportResourceNotFoundError, UpstreamNotAllowedError } from './errors.js';
import { formatSource, parseImportSource, parseImportTarget, type ImportSource, type ImportTarget } from './references.js';
import type { UpstreamService } from './upstreams.js';

/** Queue name of the jobs that run imports. */
export const IMPORT_JOB = 'upstream-import';

/** Data of one import job. */
export interface ImportJobData {
  importId: string;
}

export type ImportStatus = 'queued' | 'running' | 'succeeded' | 'failed';

/** An import as the API shows it. */
export interface ImportView {
  id: string;
  /** `<host>/<repository>[:<tag>][@<digest>]`, without scheme. */
  source: string;
  scheme: 'https' | 'http';
  /** `<repository>[:<tag>]`. */
  target: string;
  status: ImportStatus;
  /** Reason the import failed, or the reason its last attempt failed while it waits for a retry. Null otherwise. */
  message: string | null;
  /** Digest of the top-level manifest, once the import succeeded. */
  digest: string | null;
  mediaType: string | null;
  progress: { manifestsCopied: number; blobsCopied: number; blobsSkipped: number; bytesCopied: number };
  attempts: number;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** An imports table row. */
export interface ImportRow {
  id: string;
  source: string;
  upstream_host: string;
  scheme: 'https' | 'http';
  source_repository: string;
  source_reference: string;
  target_repository: string;
  target_tag: string | null;
  status: ImportStatus;
  message: string | null;
  digest: string | null;
  media_type: string | null;
  manifests_copied: number;
  blobs_copied: number;
  blobs_skipped: number;
  bytes_copied: number;
  attempts: number;
  created_by: string;
  created_by_kind: 'user' | 'robot';
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

/** Returns the API view of an imports row. */
export function importViewOf(row: ImportRow): ImportView {
  return {
    id: row.id,
    source: row.source,
    scheme: row.scheme,
    target: `${row.target_repository}${row.target_tag !== null ? `:${row.target_tag}` : ''}`,
    status: row.status,
    message: row.message,
    digest: row.digest,
    mediaType: row.media_type,
    progress: { manifestsCopied: row.manifests_copied, blobsCopied: row.blobs_copied, blobsSkipped: row.blobs_skipped, bytesCopied: Number(row.bytes_copied) },
    attempts: row.attempts,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
  };
}

/** The account that requests an import, and whether it may import into a repository. */
export interface ImportRequester {
  kind: 'user' | 'robot';
  subject: string;
  isAdministrator: boolean;
  mayImportInto(repository: string): boolean;
}

export interface ImportServiceDeps {
  db: Knex;
  events: RegistryEventSink;
  queue: JobQueue;
  upstreams: UpstreamService;
}

/** Most imports one list returns. */
export const MAX_IMPORT_LIST_LIMIT = 500;

/**
 * Import requests: each one is checked against the allowlist before it is
 * stored, so an upstream that is not on it is never contacted, and is stored
 * together with the background job that runs it.
 */
export class ImportService {
  constructor(private readonly deps: ImportServiceDeps) {}

  /**
   * Stores an import and its job in one transaction and returns it queued.
   * Throws ImportInputError for an invalid source or target,
   * ImportPermissionError when the requester may not import into the target,
   * and UpstreamNotAllowedError when the upstream is not on the allowlist or
   * plain HTTP is asked for an upstream that allows only HTTPS.
   */
  async create(context: RequestContext, requester: ImportRequester, input: { source: string; target: string }): Promise<ImportView> {
    const { source, target } = parseRequest(input);
    if (!requester.isAdministrator && !requester.mayImportInto(target.repository)) throw new ImportPermissionError(requester.subject, target.repository);

    const upstream = await this.deps.upstreams.settings(source.host);
    if (!upstream) {
      throw new UpstreamNotAllowedError(source.host, 'not_allowlisted', `upstream ${source.host} is not on the allowlist: an administrator must add it with POST /api/v1/upstreams before images can be imported from it`);
    }
    if (source.scheme === 'http' && !upstream.insecureHttp) {
      throw new UpstreamNotAllowedError(source.host, 'insecure_http_not_allowed', `upstream ${source.host} is reached over HTTPS only: remove "http://" from the source, or recreate the upstream with insecureHttp true`);
    }

    const id = randomUUID();
    const row = {
      id,
      source: formatSource(source),
      upstream_host: source.host,
      scheme: source.scheme ?? (upstream.insecureHttp ? 'http' : 'https'),
      source_repository: source.repository,
      source_reference: source.digest ?? (source.tag as string),
      target_repository: target.repository,
      target_tag: target.tag ?? source.tag,
      status: 'queued',
      created_by: requester.subject,
      created_by_kind: requester.kind,
    };

    const { db, events, queue } = this.deps;
    // pg-boss may have to create its schema on the first send, which is better done outside the transaction.
    await queue.start();
    const inserted = await db.transaction(async (trx) => {
      const [stored]: ImportRow[] = await trx('imports').insert(row).returning('*');
      if (!stored) throw new Error(`inserting import ${id} returned no row`);
      await events.record(context, { action: 'import.change', importId: id, source: stored.source, target: importViewOf(stored).target, status: 'queued', by: requester.subject }, trx);
      await queue.send<ImportJobData>(IMPORT_JOB, { importId: id }, { id, transaction: trx });
      return stored;
    });
    queue.notify(IMPORT_JOB);
    context.logger.info({ importId: id, source: inserted.source, target: importViewOf(inserted).target }, 'import queued');
    return importViewOf(inserted);
  }

  /** Returns an import that the requester may see: any for administrators, their own for everyone else. Throws ImportResourceNotFoundError. */
  async get(requester: ImportRequester, id: string): Promise<ImportView> {
    const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id);
    const row: ImportRow | undefined = isUuid ? await this.deps.db('imports').where({ id }).first('*') : undefined;
    if (!row || (!requester.isAdministrator && row.created_by !== requester.subject)) throw new ImportResourceNotFoundError('import', id);
    return importViewOf(row);
  }

  /** Lists imports newest first: all of them for administrators, their own for everyone else. */
  async list(requester: ImportRequester, filter: { status?: ImportStatus | undefined; limit: number }): Promise<ImportView[]> {
    const query = this.deps.db('imports').orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(Math.min(filter.limit, MAX_IMPORT_LIST_LIMIT));
    if (!requester.isAdministrator) query.where({ created_by: requester.subject });
    if (filter.status) query.where({ status: filter.status });
    const rows: ImportRow[] = await query.select('*');
    return rows.map(importViewOf);
  }
}

/** Parses source and target together, so that a request with problems in both reports all of them. */
function parseRequest(input: { source: string; target: string }): { source: ImportSource; target: ImportTarget } {
  const problems: InputProblem[] = [];
  let source: ImportSource | null = null;
  let target: ImportTarget | null = null;
  try {
    source = parseImportSource(input.source);
  } catch (error) {
    if (!(error instanceof ImportInputError)) throw error;
    problems.push(...error.problems);
  }
  try {
    target = parseImportTarget(input.target);
  } catch (error) {
    if (!(error instanceof ImportInputError)) throw error;
    problems.push(...error.problems);
  }
  if (problems.length > 0 || !source || !target) throw new ImportInputError(problems);
  return { source, target };
}
