import type { Knex } from 'knex';
import type pino from 'pino';
import type { AuditEventInput } from './chain.js';
import { appendEvents, emptyInput } from './store.js';

interface Pending {
  input: AuditEventInput;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export interface AuditWriterOptions {
  /** Events one transaction appends at most. */
  maxBatch?: number;
  /** Events kept for a later attempt after their append failed, when the caller chose not to wait for them. */
  maxBacklog?: number;
  /** Maximum wait for the chain head's lock, in milliseconds. An append that waits longer fails. */
  lockTimeoutMs?: number;
  /** Name of this gateway process, on the events that report dropped events. */
  replica?: string;
}

/** Default longest wait for the chain head's lock, in milliseconds. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;

/** Thrown when an event could not be committed to the audit trail. */
export class AuditUnavailableError extends Error {
  constructor(cause: unknown) {
    super('the audit trail could not be written', { cause });
    this.name = 'AuditUnavailableError';
  }
}

/**
 * Appends events outside any other transaction, with group commit: while one
 * transaction appends a batch, new events wait, and the next transaction
 * appends all of them at once. A caller's promise settles when the batch that
 * contains its event has committed or failed.
 *
 * `appendDetached` is for events whose request goes on even when the trail
 * cannot be written: an event whose append failed is kept, up to a bound, and
 * appended with a later batch, its details noting the time it was observed.
 */
export class AuditWriter {
  private queue: Pending[] = [];
  private backlog: AuditEventInput[] = [];
  private flushing: Promise<void> | null = null;
  private readonly maxBatch: number;
  private readonly maxBacklog: number;
  private readonly lockTimeoutMs: number;
  private droppedEvents = 0;
  /** Events dropped since the last `audit.dropped` event was written, and when the first of them was dropped. */
  private unreportedDrops = 0;
  private firstUnreportedDropAt: Date | null = null;
  private readonly replica: string;

  constructor(
    private readonly db: Knex,
    private readonly logger: pino.Logger,
    options: AuditWriterOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 500;
    this.maxBacklog = options.maxBacklog ?? 10_000;
    this.lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    this.replica = options.replica ?? 'unknown';
  }

  /** Appends an event and resolves once it is committed; rejects with AuditUnavailableError when it is not. */
  append(input: AuditEventInput): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Appends an event and resolves once it is committed, or once its append
   * failed, in which case the event is kept for a later batch.
   */
  async appendDetached(input: AuditEventInput): Promise<void> {
    try {
      await this.append(input);
    } catch {
      this.keepForLater({ ...input, details: { ...input.details, observedAt: new Date().toISOString() } });
    }
  }

  /** Appends events in the caller's transaction, as its last statement; they commit or roll back with it. */
  appendInTransaction(trx: Knex.Transaction, inputs: readonly AuditEventInput[]): Promise<unknown> {
    return appendEvents(trx, inputs, { lockTimeoutMs: this.lockTimeoutMs });
  }

  /** Events waiting for a later attempt. */
  get backlogSize(): number {
    return this.backlog.length;
  }

  /** Waits until every queued event has been attempted, and tries the backlog once more. */
  async drain(): Promise<void> {
    while (this.flushing || this.queue.length > 0) {
      this.schedule();
      await this.flushing;
    }
    if (this.backlog.length > 0 || this.unreportedDrops > 0) {
      await this.flushBacklog();
    }
  }

  private keepForLater(input: AuditEventInput): void {
    if (this.backlog.length >= this.maxBacklog) {
      this.droppedEvents += 1;
      this.unreportedDrops += 1;
      this.firstUnreportedDropAt ??= new Date();
      this.logger.error({ action: input.action, requestId: input.requestId, dropped: this.droppedEvents }, 'audit backlog is full; an event that could not be written was dropped');
      return;
    }
    this.backlog.push(input);
  }

  private schedule(): void {
    if (this.flushing || this.queue.length === 0) return;
    this.flushing = this.flushQueue().finally(() => {
      this.flushing = null;
      this.schedule();
    });
  }

  /** Returns an `audit.dropped` event for the events dropped since the last one, or nothing when none were. */
  private dropReport(): AuditEventInput[] {
    if (this.unreportedDrops === 0) return [];
    const details = { events: this.unreportedDrops, firstDroppedAt: this.firstUnreportedDropAt?.toISOString() ?? null, lastDroppedAt: new Date().toISOString() };
    return [{ ...emptyInput('audit.dropped', this.replica), actorSubject: 'portcullis', details }];
  }

  /** Marks the events of a written drop report as reported. */
  private reported(report: AuditEventInput[]): void {
    const [written] = report;
    if (!written) return;
    this.unreportedDrops -= written.details.events as number;
    if (this.unreportedDrops === 0) this.firstUnreportedDropAt = null;
  }

  private async flushQueue(): Promise<void> {
    const batch = this.queue.splice(0, this.maxBatch);
    const backlog = this.backlog.splice(0, Math.max(0, this.maxBatch - batch.length));
    const report = this.dropReport();
    try {
      await this.db.transaction(async (trx) => {
        await appendEvents(trx, [...report, ...backlog, ...batch.map((pending) => pending.input)], { lockTimeoutMs: this.lockTimeoutMs });
      });
      this.reported(report);
      if (backlog.length > 0) this.logger.info({ events: backlog.length }, 'audit events kept after a failed write are now written');
      for (const pending of batch) pending.resolve();
    } catch (error) {
      this.backlog.unshift(...backlog);
      this.logger.error({ err: error, events: batch.length, requestIds: batch.slice(0, 20).map((pending) => pending.input.requestId) }, 'audit events could not be written');
      const failure = new AuditUnavailableError(error);
      for (const pending of batch) pending.reject(failure);
    }
  }

  private async flushBacklog(): Promise<void> {
    const backlog = this.backlog.splice(0, this.maxBatch);
    const report = this.dropReport();
    try {
      await this.db.transaction(async (trx) => {
        await appendEvents(trx, [...report, ...backlog], { lockTimeoutMs: this.lockTimeoutMs });
      });
      this.reported(report);
      this.logger.info({ events: backlog.length }, 'audit events kept after a failed write are now written');
    } catch (error) {
      this.backlog.unshift(...backlog);
      this.logger.error({ err: error, events: backlog.length }, 'audit events kept after a failed write could not be written yet');
    }
  }
}
