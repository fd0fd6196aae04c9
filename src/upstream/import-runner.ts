import type { Knex } from 'knex';
import type pino from 'pino';
import type { RequestContext } from '../context.js';
import type { RegistryEventSink } from '../audit/registry-events.js';
import { RegistryError } from '../errors.js';
import type { JobRun } from '../jobs/queue.js';
import type { ManifestService } from '../registry/manifests.js';
import type { UploadService } from '../registry/uploads.js';
import { UpstreamClient, type UpstreamClientOptions } from './client.js';
import { ImageCopier, type CopyProgress } from './copier.js';
import { ImportAbortedError, UpstreamRequestError } from './errors.js';
import { importViewOf, type ImportJobData, type ImportRow, type ImportStatus } from './imports.js';
import type { UpstreamService } from './upstreams.js';

export interface ImportRunnerDeps {
  db: Knex;
  events: RegistryEventSink;
  upstreams: UpstreamService;
  uploads: UploadService;
  manifests: ManifestService;
  logger: pino.Logger;
  /** Timeouts of the upstream client; its defaults apply where unset. */
  client?: Pick<UpstreamClientOptions, 'requestTimeoutMs' | 'blobIdleTimeoutMs' | 'maxRedirects'>;
}

/** Registry error codes that another attempt can fix: a session held by another request, or one that expired. */
const RETRYABLE_REGISTRY_CODES: ReadonlySet<string> = new Set(['BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'UNAVAILABLE']);

/** Returns whether running the import again could succeed. */
function isRetryable(error: unknown): boolean {
  if (error instanceof ImportAbortedError) return false;
  if (error instanceof UpstreamRequestError) return error.retryable;
  if (error instanceof RegistryError) return RETRYABLE_REGISTRY_CODES.has(error.code);
  // Database, storage and shutdown failures.
  return true;
}

/** Returns a message for the import's status; failures outside the import's own domain get a pointer to the log instead of their details. */
function messageOf(error: unknown, importId: string): string {
  if (error instanceof ImportAbortedError || error instanceof UpstreamRequestError || error instanceof RegistryError) return error.message;
  return `internal error: the failure was logged with import id ${importId}`;
}

/**
 * Runs import jobs: copies the image from the upstream into the target
 * repository and keeps the import's status, progress and audit events up to
 * date. A retryable failure puts the import back to `queued` and throws, so
 * that the job queue runs it again. A failure of the last attempt, or one
 * that no retry can fix, marks the import `failed`.
 */
export class ImportRunner {
  constructor(private readonly deps: ImportRunnerDeps) {}

  /** Runs one attempt of an import job. */
  async run(job: JobRun<ImportJobData>, signal: AbortSignal): Promise<void> {
    const { db, logger } = this.deps;
    const importId = job.data.importId;
    const row: ImportRow | undefined = await db('imports').where({ id: importId }).first('*');
    if (!row) {
      logger.warn({ importId }, 'import job has no import row; nothing to do');
      return;
    }
    if (row.status === 'succeeded' || row.status === 'failed') {
      logger.info({ importId, status: row.status }, 'import already finished; the job ends');
      return;
    }

    const context = this.contextOf(row);
    await this.changeStatus(context, row, 'running', { attempts: db.raw('attempts + 1'), started_at: db.fn.now(), message: null });

    try {
      const result = await this.copy(context, row, signal);
      await this.changeStatus(context, row, 'succeeded', { digest: result.digest, media_type: result.mediaType, finished_at: db.fn.now(), message: null, ...progressColumns(result.progress) });
      context.logger.info({ digest: result.digest, ...result.progress }, 'import succeeded');
    } catch (error) {
      const message = messageOf(error, importId);
      const retry = isRetryable(error) && job.retryCount < job.retryLimit;
      if (!retry) {
        context.logger.warn({ err: error, attempt: job.retryCount + 1 }, 'import failed');
        await this.changeStatus(context, row, 'failed', { message, finished_at: db.fn.now() });
        return;
      }
      context.logger.warn({ err: error, attempt: job.retryCount + 1, retryLimit: job.retryLimit }, 'import attempt failed; it will be retried');
      await this.changeStatus(context, row, 'queued', { message: `attempt ${job.retryCount + 1} failed, retrying: ${message}` });
      throw error;
    }
  }

  private async copy(context: RequestContext, row: ImportRow, signal: AbortSignal): Promise<{ digest: string; mediaType: string; progress: CopyProgress }> {
    const { db, upstreams, uploads, manifests } = this.deps;
    // The allowlist is read again: the upstream may have been removed or changed since the import was queued.
    const upstream = await upstreams.settings(row.upstream_host);
    if (!upstream) throw new ImportAbortedError(`upstream ${row.upstream_host} is no longer on the allowlist`);
    if (row.scheme === 'http' && !upstream.insecureHttp) throw new ImportAbortedError(`upstream ${row.upstream_host} no longer allows plain HTTP`);

    const client = new UpstreamClient({ host: upstream.host, scheme: row.scheme, credentials: upstream.credentials }, { logger: context.logger, signal, ...this.deps.client });
    const copier = new ImageCopier(
      { db, uploads, manifests },
      {
        client,
        context,
        sourceRepository: row.source_repository,
        targetRepository: row.target_repository,
        signal,
        onProgress: async (progress) => {
          await db('imports').where({ id: row.id }).update({ ...progressColumns(progress), updated_at: db.fn.now() });
        },
      },
    );
    return copier.copy(row.source_reference, row.target_tag);
  }

  /** Updates the status and other columns and records the change in the same transaction. */
  private async changeStatus(context: RequestContext, row: ImportRow, status: ImportStatus, columns: Record<string, unknown>): Promise<void> {
    const { db, events } = this.deps;
    await db.transaction(async (trx) => {
      await trx('imports')
        .where({ id: row.id })
        .update({ ...columns, status, updated_at: trx.fn.now() });
      await events.record(context, { action: 'import.change', importId: row.id, source: row.source, target: importViewOf(row).target, status, by: row.created_by }, trx);
    });
  }

  /** Builds the context that the import's pushes and events are recorded with, whose identity is the account that requested the import. */
  private contextOf(row: ImportRow): RequestContext {
    return {
      requestId: `import-${row.id}`,
      identity: { kind: row.created_by_kind, subject: row.created_by },
      principal: null,
      clientAddress: '',
      userAgent: 'portcullis-import',
      logger: this.deps.logger.child({ importId: row.id, source: row.source, target: importViewOf(row).target }),
    };
  }
}

function progressColumns(progress: CopyProgress): Record<string, number> {
  return { manifests_copied: progress.manifestsCopied, blobs_copied: progress.blobsCopied, blobs_skipped: progress.blobsSkipped, bytes_copied: progress.bytesCopied };
}
