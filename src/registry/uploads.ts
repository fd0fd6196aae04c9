import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { Knex } from 'knex';
import type pino from 'pino';
import { isRegistryError, RegistryError } from '../errors.js';
import type { RequestContext } from '../context.js';
import type { RegistryEventSink } from '../audit/registry-events.js';
import type { PullGate } from '../policy/pull-gate.js';
import type { BlobStore, UploadState } from '../storage/blob-store.js';
import { blobKey, uploadKey } from '../storage/keys.js';
import { findRepositoryId, ensureRepositoryId } from './repositories.js';
import { enforcePullDecision } from './pull-decisions.js';
import { isValidName, parseDigest, type ParsedDigest } from './reference.js';
import { continueHash, digestStream, emptyHashProgress, HashingCounter, isHashProgress, LengthMismatchError, type HashProgress } from './upload-hash.js';

/** An upload session as the HTTP layer reports it. */
export interface UploadSession {
  id: string;
  repository: string;
  /** Bytes received so far; the next chunk must start at this offset. */
  size: number;
}

/** A chunk's body and what the request declared about it. */
export interface ChunkInput {
  body: Readable;
  /** Content-Length of the body, or null when the request did not declare it. */
  contentLength: number | null;
  /** Inclusive byte range from Content-Range, or null when absent. */
  range: { start: number; end: number } | null;
}

interface SessionRow {
  id: string;
  repository_id: number;
  size: number;
  hash_state: unknown;
  store_state: UploadState;
  updated_at: Date;
}

/** How long a request holds an upload session before the lease must be renewed, in seconds. */
const LEASE_SECONDS = 60;
const LEASE_RENEW_MS = 20_000;

export interface UploadServiceDeps {
  db: Knex;
  store: BlobStore;
  events: RegistryEventSink;
  gate: PullGate;
  logger: pino.Logger;
}

/**
 * Blob uploads: sessions in PostgreSQL, staged bytes in the blob store.
 *
 * A request that changes a session takes a lease on its row first, so two
 * replicas never append to the same session at once. The session's size,
 * hash progress and store state change together, only after the bytes were
 * stored, so a failed or truncated chunk leaves the session as it was.
 */
export class UploadService {
  constructor(private readonly deps: UploadServiceDeps) {}

  /** Opens a new upload session in a repository, creating the repository on first push. */
  async start(repository: string): Promise<UploadSession> {
    const { db, store } = this.deps;
    const repositoryId = await ensureRepositoryId(db, repository);
    const id = randomUUID();
    const storeState = await store.startUpload(uploadKey(id));
    await db('upload_sessions').insert({
      id,
      repository_id: repositoryId,
      size: 0,
      hash_state: JSON.stringify(emptyHashProgress()),
      store_state: JSON.stringify(storeState),
    });
    this.deps.logger.debug({ uploadId: id, repository }, 'upload session started');
    return { id, repository, size: 0 };
  }

  /** Returns a session of this repository, or throws BLOB_UPLOAD_UNKNOWN. */
  async status(repository: string, id: string): Promise<UploadSession> {
    const row = await this.loadSession(repository, id);
    return { id, repository, size: row.size };
  }

  /** Appends one chunk (PATCH). A chunk that does not start at the current offset fails with 416. */
  async append(repository: string, id: string, chunk: ChunkInput): Promise<UploadSession> {
    return this.withLease(repository, id, async (row, lease, leaseLost) => {
      const updated = await this.appendChunk(row, lease, chunk, leaseLost);
      return { id, repository, size: updated.size };
    });
  }

  /**
   * Completes an upload (PUT ?digest=): appends the optional last chunk,
   * verifies the digest against the stored bytes, then makes the blob
   * visible in the repository. A digest mismatch cancels the session.
   */
  async finish(context: RequestContext, repository: string, id: string, digestText: string, chunk: ChunkInput | null): Promise<{ digest: string; size: number }> {
    const digest = parseDigest(digestText);
    return this.withLease(repository, id, async (row, lease, leaseLost) => {
      const current = chunk ? await this.appendChunk(row, lease, chunk, leaseLost) : row;
      const hash = this.hashProgressOf(current);

      const actual = digest.algorithm === 'sha256' ? hash.sha256 : await digestStream(digest.algorithm, await this.deps.store.readUpload(current.store_state));
      if (actual !== digest.value) {
        await this.discard(current, 'digest mismatch');
        throw new RegistryError('DIGEST_INVALID', 'the uploaded content does not match the digest given: the upload was cancelled, start a new one', {
          expected: digest.value,
          actual,
        });
      }

      await this.commitBlob(context, repository, current, digest, lease);
      return { digest: digest.value, size: current.size };
    });
  }

  /**
   * Stores a whole blob from one request (POST ?digest= with a body),
   * through a session of its own so that the same verification applies.
   */
  async uploadMonolithic(context: RequestContext, repository: string, digestText: string, chunk: ChunkInput): Promise<{ digest: string; size: number }> {
    parseDigest(digestText);
    const session = await this.start(repository);
    try {
      return await this.finish(context, repository, session.id, digestText, { ...chunk, range: null });
    } catch (error) {
      await this.cancel(repository, session.id).catch((cancelError: unknown) => {
        if (!(cancelError instanceof RegistryError)) context.logger.warn({ err: cancelError, uploadId: session.id }, 'cancelling a failed monolithic upload failed');
      });
      throw error;
    }
  }

  /** Cancels a session (DELETE) and removes its staged bytes. */
  async cancel(repository: string, id: string): Promise<void> {
    await this.withLease(repository, id, async (row) => {
      await this.discard(row, 'cancelled by client');
    });
  }

  /**
   * Links a blob from another repository (POST ?mount=&from=). Returns false
   * when it cannot be mounted: no source, a source that is not a valid
   * repository name, a source without the blob, or a source the caller may
   * not pull from (`mayPullSource` false, or the pull gate denies it). A
   * denial by the gate is recorded as `pull.denied`.
   * Without `from` nothing is mounted, because knowing a digest must not
   * grant access to a blob.
   */
  async mount(context: RequestContext, repository: string, digestText: string, from: string | null, mayPullSource: (source: string) => boolean): Promise<boolean> {
    const digest = parseDigest(digestText);
    if (from === null || from === repository || !isValidName(from)) return false;
    if (!mayPullSource(from)) {
      context.logger.info({ repository, from, digest: digest.value }, 'caller may not pull from the mount source; falling back to an upload');
      return false;
    }

    const { db } = this.deps;
    const sourceId = await findRepositoryId(db, from);
    if (sourceId === null) return false;
    const linked = await db('repository_blobs').where({ repository_id: sourceId, digest: digest.value }).first('digest');
    if (!linked) return false;

    const request = { repository: from, kind: 'blob' as const, digest: digest.value };
    try {
      await enforcePullDecision(this.deps.events, context, request, await this.deps.gate.decide(context, request));
    } catch (error) {
      if (!isRegistryError(error, 'DENIED')) throw error;
      context.logger.info({ repository, from, digest: digest.value, reason: error.message }, 'mount source not pullable; falling back to an upload');
      return false;
    }

    const targetId = await ensureRepositoryId(db, repository);
    await db.transaction(async (trx) => {
      await trx('repository_blobs').insert({ repository_id: targetId, digest: digest.value }).onConflict(['repository_id', 'digest']).ignore();
      await this.deps.events.record(context, { action: 'blob.mount', repository, from, digest: digest.value }, trx);
    });
    return true;
  }

  /**
   * Removes sessions that no request changed for `maxAgeSeconds`, with their
   * staged bytes, and retries storage cleanups that failed before.
   * Returns the number of sessions removed.
   */
  async purgeStale(maxAgeSeconds: number): Promise<number> {
    const { db, logger } = this.deps;
    // One statement selects and deletes, so a session that a request leases or
    // touches in the meantime is never removed.
    const stale: SessionRow[] = await db('upload_sessions')
      .where('updated_at', '<', db.raw(`now() - make_interval(secs => ?)`, [maxAgeSeconds]))
      .andWhere((query) => query.whereNull('lease_until').orWhere('lease_until', '<', db.fn.now()))
      .delete()
      .returning('*');
    const removed = stale.length;
    for (const row of stale) {
      await this.abortStaged(row.store_state, `stale session ${row.id}`);
    }
    if (removed > 0) logger.info({ removed, maxAgeSeconds }, 'purged stale upload sessions');
    await this.retryCleanups();
    return removed;
  }

  private async retryCleanups(): Promise<void> {
    const { db, store, logger } = this.deps;
    const rows: Array<{ id: number; upload_state: UploadState; attempts: number }> = await db('storage_cleanup').orderBy('id').limit(100).select('*');
    for (const row of rows) {
      try {
        await store.abortUpload(row.upload_state);
        await db('storage_cleanup').where({ id: row.id }).delete();
      } catch (error) {
        logger.warn({ err: error, cleanupId: row.id, attempts: row.attempts + 1 }, 'removing staged upload bytes failed again; will retry');
        await db('storage_cleanup').where({ id: row.id }).increment('attempts', 1);
      }
    }
  }

  private async appendChunk(row: SessionRow, lease: string, chunk: ChunkInput, leaseLost: AbortSignal): Promise<SessionRow> {
    const { range, contentLength } = chunk;
    if (range !== null && range.start !== row.size) {
      throw new RegistryError('RANGE_INVALID', `chunk starts at byte ${range.start} but the upload contains ${row.size} bytes: send the chunk that starts at ${row.size}`, {
        offset: row.size,
        start: range.start,
      });
    }
    if (range !== null && range.end < range.start) {
      throw new RegistryError('RANGE_INVALID', 'Content-Range end is before its start', { start: range.start, end: range.end });
    }
    const rangeLength = range === null ? null : range.end - range.start + 1;
    if (rangeLength !== null && contentLength !== null && rangeLength !== contentLength) {
      throw new RegistryError('SIZE_INVALID', `Content-Range covers ${rangeLength} bytes but Content-Length is ${contentLength}`, { rangeLength, contentLength });
    }

    const { store } = this.deps;
    const hasher = await continueHash(this.hashProgressOf(row), () => store.readUpload(row.store_state));
    const counter = new HashingCounter(hasher, rangeLength ?? contentLength);
    let newState: UploadState;
    try {
      // A store that fails stops reading; destroying the counter then ends the pipeline too.
      const appending = store.appendUpload(row.store_state, counter).catch((error: unknown) => {
        counter.destroy(error instanceof Error ? error : new Error(String(error)));
        throw error;
      });
      // A writer whose lease lapsed must stop before another request takes the session over.
      const stopWriting = () => counter.destroy(new Error('the upload session lease was lost'));
      leaseLost.addEventListener('abort', stopWriting, { once: true });
      try {
        const [, state] = await Promise.all([pipeline(chunk.body, counter), appending]);
        newState = state;
      } finally {
        leaseLost.removeEventListener('abort', stopWriting);
      }
      if (leaseLost.aborted) throw new RegistryError('BLOB_UPLOAD_INVALID', 'the upload session lease lapsed while the chunk was written: resend it from the offset that GET on the session reports', { uploadId: row.id });
    } catch (error) {
      if (error instanceof LengthMismatchError) {
        throw new RegistryError('SIZE_INVALID', `${error.message}; the chunk was not stored, resend it from byte ${row.size}`, {
          expected: error.expected,
          offset: row.size,
        });
      }
      throw error;
    }

    const progress = counter.result();
    const updated = await this.deps.db('upload_sessions')
      .where({ id: row.id, lease_token: lease })
      .update({
        size: progress.size,
        hash_state: JSON.stringify(progress),
        store_state: JSON.stringify(newState),
        updated_at: this.deps.db.fn.now(),
      });
    if (updated === 0) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'the upload session expired while the chunk was written', { uploadId: row.id });
    return { ...row, size: progress.size, hash_state: progress, store_state: newState };
  }

  private async commitBlob(context: RequestContext, repository: string, row: SessionRow, digest: ParsedDigest, lease: string): Promise<void> {
    const { db, store, events } = this.deps;
    const key = blobKey(digest.value);
    await store.commitUpload(row.store_state, key);

    await db.transaction(async (trx) => {
      await trx('blobs').insert({ digest: digest.value, size: row.size, storage_key: key }).onConflict('digest').ignore();
      await trx('repository_blobs').insert({ repository_id: row.repository_id, digest: digest.value }).onConflict(['repository_id', 'digest']).ignore();
      await trx('upload_sessions').where({ id: row.id, lease_token: lease }).delete();
      await events.record(context, { action: 'blob.push', repository, digest: digest.value, size: row.size }, trx);
    });
    context.logger.debug({ uploadId: row.id, digest: digest.value, size: row.size }, 'blob committed');
  }

  private async discard(row: SessionRow, reason: string): Promise<void> {
    await this.deps.db('upload_sessions').where({ id: row.id }).delete();
    await this.abortStaged(row.store_state, reason);
  }

  private async abortStaged(state: UploadState, reason: string): Promise<void> {
    try {
      await this.deps.store.abortUpload(state);
    } catch (error) {
      this.deps.logger.warn({ err: error, reason }, 'removing staged upload bytes failed; queued for retry');
      await this.deps.db('storage_cleanup').insert({ upload_state: JSON.stringify(state), reason });
    }
  }

  private hashProgressOf(row: SessionRow): HashProgress {
    if (!isHashProgress(row.hash_state)) throw new Error(`upload session ${row.id} has an unreadable hash state`);
    return row.hash_state;
  }

  private async loadSession(repository: string, id: string): Promise<SessionRow> {
    const unknown = new RegistryError('BLOB_UPLOAD_UNKNOWN', 'upload session not found: it was finished, cancelled or expired, or belongs to another repository', { uploadId: id.slice(0, 64) });
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) throw unknown;
    const row: SessionRow | undefined = await this.deps.db('upload_sessions as s')
      .join('repositories as r', 'r.id', 's.repository_id')
      .where({ 's.id': id, 'r.name': repository })
      .first('s.*');
    if (!row) throw unknown;
    return row;
  }

  /**
   * Runs `work` while this request holds the session's lease. The lease is
   * renewed every LEASE_RENEW_MS; when a renewal fails or finds the lease
   * gone, `leaseLost` aborts at once, well before the lease could expire and
   * another request could take the session, so two writers never overlap.
   */
  private async withLease<T>(repository: string, id: string, work: (row: SessionRow, lease: string, leaseLost: AbortSignal) => Promise<T>): Promise<T> {
    const { db, logger } = this.deps;
    await this.loadSession(repository, id);
    const lease = randomUUID();
    const leaseUntil = db.raw(`now() + make_interval(secs => ?)`, [LEASE_SECONDS]);
    const [row]: SessionRow[] = await db('upload_sessions')
      .where({ id })
      .andWhere((query) => query.whereNull('lease_until').orWhere('lease_until', '<', db.fn.now()))
      .update({ lease_token: lease, lease_until: leaseUntil })
      .returning('*');
    if (!row) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'another request is writing to this upload session: retry when it has finished', { uploadId: id }, 409);
    }

    const leaseLost = new AbortController();
    let renewedAt = Date.now();
    const renewal = setInterval(() => {
      // A renewal stuck behind an unreachable database must not outlast half the lease.
      if (Date.now() - renewedAt > (LEASE_SECONDS * 1000) / 2) {
        logger.warn({ uploadId: id }, 'the upload session lease could not be renewed in time; stopping the write');
        leaseLost.abort();
        return;
      }
      db('upload_sessions')
        .where({ id, lease_token: lease })
        .update({ lease_until: db.raw(`now() + make_interval(secs => ?)`, [LEASE_SECONDS]) })
        .then((renewed) => {
          if (renewed > 0) {
            renewedAt = Date.now();
            return;
          }
          logger.warn({ uploadId: id }, 'the upload session lease is gone; stopping the write');
          leaseLost.abort();
        })
        .catch((error: unknown) => {
          logger.warn({ err: error, uploadId: id }, 'renewing the upload session lease failed; stopping the write');
          leaseLost.abort();
        });
    }, LEASE_RENEW_MS);
    try {
      return await work(row, lease, leaseLost.signal);
    } finally {
      clearInterval(renewal);
      await db('upload_sessions')
        .where({ id, lease_token: lease })
        .update({ lease_token: null, lease_until: null })
        .catch((error: unknown) => logger.warn({ err: error, uploadId: id }, 'releasing the upload session lease failed; it expires by itself'));
    }
  }
}
