import pg from 'pg';
import PgBoss from 'pg-boss';
import type { Knex } from 'knex';
import type pino from 'pino';

/** One run of a job, as its handler receives it. */
export interface JobRun<T> {
  id: string;
  data: T;
  /** Number of earlier runs that failed; 0 on the first run. */
  retryCount: number;
  /** Number of retries allowed after the first run. */
  retryLimit: number;
}

/** A kind of background job: its queue name, its retry rules and the function that does the work. */
export interface JobDefinition<T> {
  name: string;
  /** Retries after a failed run; the job fails for good after the last one. */
  retryLimit: number;
  /** Delay before the first retry, in seconds; later retries back off exponentially. */
  retryDelaySeconds: number;
  /** Maximum duration of a run, in seconds. The handler's signal aborts ABORT_MARGIN_SECONDS earlier, and then pg-boss fails the run. */
  expireInSeconds: number;
  /** Runs of this job that one process executes at once. */
  concurrency: number;
  /**
   * Does the work. A run that throws is retried, and one that returns is
   * complete. The signal aborts when the run nears its expiry or the
   * process stops.
   */
  handler(run: JobRun<T>, signal: AbortSignal): Promise<void>;
}

export interface JobQueueOptions {
  /** PostgreSQL connection string of the gateway's database; pg-boss keeps its tables in the `pgboss` schema there. */
  connectionString: string;
  logger: pino.Logger;
  /** Whether this process executes jobs. A queue without workers only sends them, for other processes to run. */
  workers: boolean;
  /** How often an idle worker looks for new jobs, in seconds (pg-boss accepts 0.5 and more). */
  pollingIntervalSeconds?: number;
}

/** Seconds before a run's expiry at which its signal aborts, so the handler stops before pg-boss retries the job elsewhere. */
const ABORT_MARGIN_SECONDS = 30;

/** How long stop() waits for running handlers to return after their signals aborted, in milliseconds. */
const STOP_TIMEOUT_MS = 15_000;

const DEFAULT_POLLING_INTERVAL_SECONDS = 2;

/** Arbitrary constant naming the advisory lock that serialises queue setup across replicas. */
const QUEUE_SETUP_LOCK_ID = 0x506f7275;

/** Thrown by send when pg-boss stored no job, which happens when the queue does not exist. */
export class JobNotQueuedError extends Error {
  constructor(readonly queue: string) {
    super(`no job was stored in queue ${queue}: the queue does not exist`);
    this.name = 'JobNotQueuedError';
  }
}

/**
 * Background jobs in PostgreSQL through pg-boss. A job sent by any replica is
 * stored in the database, so it survives restarts and any replica with
 * workers may run it. A failed run is retried with exponential backoff, and a
 * run whose process died is retried once it expires.
 *
 * pg-boss starts on the first send, or at start() for a queue with workers;
 * starting creates or migrates its schema and creates the defined queues.
 */
export class JobQueue {
  private readonly boss: PgBoss;
  private readonly definitions = new Map<string, JobDefinition<never>>();
  private readonly workerIds = new Map<string, string[]>();
  private readonly running = new Set<AbortController>();
  private starting: Promise<void> | null = null;
  private stopped = false;
  private stopping = false;

  constructor(private readonly options: JobQueueOptions) {
    this.boss = new PgBoss({
      connectionString: options.connectionString,
      application_name: 'portcullis-jobs',
      max: options.workers ? 6 : 2,
      // Maintenance (expiring runs of dead processes, archiving) runs where jobs run.
      supervise: options.workers,
      schedule: false,
      migrate: true,
    });
    this.boss.on('error', (error) => {
      // Once the gateway stops, the database may close connections first (Ctrl-C reaches an embedded PostgreSQL too), so such errors are expected.
      if (this.stopping) options.logger.warn({ err: error }, 'background job queue error while stopping');
      else options.logger.error({ err: error }, 'background job queue error');
    });
  }

  /** Whether this process executes jobs. */
  get hasWorkers(): boolean {
    return this.options.workers;
  }

  /** Adds a kind of job. Every definition must be added before the queue starts. */
  define<T extends object>(definition: JobDefinition<T>): void {
    if (this.starting) throw new Error(`job ${definition.name} was defined after the job queue started`);
    if (definition.expireInSeconds <= ABORT_MARGIN_SECONDS * 2) throw new Error(`job ${definition.name}: expireInSeconds must be more than ${ABORT_MARGIN_SECONDS * 2}`);
    this.definitions.set(definition.name, definition as unknown as JobDefinition<never>);
  }

  /** Starts pg-boss, creates the queues and, when this process has workers, starts them. Calling it again waits for the first start. */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('the job queue was stopped'));
    this.starting ??= this.startOnce().catch((error: unknown) => {
      this.starting = null;
      throw error;
    });
    return this.starting;
  }

  /**
   * Stores a job. With a transaction, the job is stored in it, so it exists
   * exactly when the transaction commits. `expireInSeconds` replaces the
   * definition's limit for this job. Returns the job id.
   */
  async send<T extends object>(name: string, data: T, options: { id?: string; transaction?: Knex.Transaction; expireInSeconds?: number } = {}): Promise<string> {
    if (!this.definitions.has(name)) throw new Error(`no job named ${name} is defined`);
    if (options.expireInSeconds !== undefined && options.expireInSeconds <= ABORT_MARGIN_SECONDS * 2) throw new Error(`job ${name}: expireInSeconds must be more than ${ABORT_MARGIN_SECONDS * 2}`);
    await this.start();

    const db = options.transaction ? await transactionExecutor(options.transaction) : undefined;
    const id = await this.boss.send(name, data, {
      ...(options.id ? { id: options.id } : {}),
      ...(options.expireInSeconds !== undefined ? { expireInSeconds: options.expireInSeconds } : {}),
      ...(db ? { db } : {}),
    });
    if (id === null) throw new JobNotQueuedError(name);
    return id;
  }

  /** Wakes this process's idle workers of a queue, so a job sent a moment ago starts without waiting for the next poll. */
  notify(name: string): void {
    for (const workerId of this.workerIds.get(name) ?? []) this.boss.notifyWorker(workerId);
  }

  /** Marks the start of a shutdown, after which connection errors are expected and logged as warnings. */
  beginStopping(): void {
    this.stopping = true;
  }

  /**
   * Stops the workers: running handlers get an aborted signal, and runs that
   * have not returned within the timeout are failed, so they are retried.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping = true;
    if (!this.starting) return;
    await this.starting.catch(() => undefined);

    for (const controller of this.running) controller.abort(new Error('the gateway is stopping'));
    await this.boss.stop({ graceful: true, wait: true, timeout: STOP_TIMEOUT_MS });
  }

  /**
   * Starts pg-boss and creates or updates the queues while holding a session
   * advisory lock, because replicas that create the same queues at once on a
   * new database can deadlock in pg-boss's table creation.
   */
  private async setUpQueues(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.connectionString, application_name: 'portcullis-jobs-setup' });
    await client.connect();
    try {
      await client.query('select pg_advisory_lock($1)', [QUEUE_SETUP_LOCK_ID]);
      await this.boss.start();
      for (const definition of this.definitions.values()) {
        const queue = { name: definition.name, retryLimit: definition.retryLimit, retryDelay: definition.retryDelaySeconds, retryBackoff: true, expireInSeconds: definition.expireInSeconds };
        await this.boss.createQueue(definition.name, queue);
        // createQueue leaves an existing queue as it is, so the settings of this version are applied explicitly.
        await this.boss.updateQueue(definition.name, queue);
      }
    } finally {
      // Ending the session releases the lock.
      await client.end();
    }
  }

  private async startOnce(): Promise<void> {
    const { logger, workers } = this.options;
    await this.setUpQueues();
    if (!workers) {
      logger.debug({ queues: [...this.definitions.keys()] }, 'job queue started without workers');
      return;
    }

    for (const definition of this.definitions.values()) {
      const ids: string[] = [];
      for (let slot = 0; slot < definition.concurrency; slot++) {
        const id = await this.boss.work<object>(
          definition.name,
          { includeMetadata: true, batchSize: 1, pollingIntervalSeconds: this.options.pollingIntervalSeconds ?? DEFAULT_POLLING_INTERVAL_SECONDS },
          async (jobs) => {
            for (const job of jobs) await this.execute(definition, job);
          },
        );
        ids.push(id);
      }
      this.workerIds.set(definition.name, ids);
    }
    logger.info({ queues: [...this.definitions.keys()] }, 'job workers started');
  }

  private async execute(definition: JobDefinition<never>, job: PgBoss.JobWithMetadata<object>): Promise<void> {
    const { logger } = this.options;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`the job ran for longer than its limit of ${definition.expireInSeconds} s`)), (job.expireInSeconds - ABORT_MARGIN_SECONDS) * 1000);
    this.running.add(controller);
    const attempt = job.retryCount + 1;
    try {
      logger.info({ queue: definition.name, jobId: job.id, attempt }, 'job started');
      await definition.handler({ id: job.id, data: job.data as never, retryCount: job.retryCount, retryLimit: job.retryLimit }, controller.signal);
      logger.info({ queue: definition.name, jobId: job.id, attempt }, 'job completed');
    } catch (error) {
      const willRetry = job.retryCount < job.retryLimit;
      logger.warn({ err: error, queue: definition.name, jobId: job.id, attempt, willRetry }, willRetry ? 'job failed; it will be retried' : 'job failed for good');
      throw error;
    } finally {
      clearTimeout(timer);
      this.running.delete(controller);
    }
  }
}

/** Runs pg-boss statements on the connection of a knex transaction. */
async function transactionExecutor(transaction: Knex.Transaction): Promise<PgBoss.Db> {
  // A knex transaction's client hands out the one connection the transaction runs on.
  const connection = (await transaction.client.acquireConnection()) as { query(text: string, values: unknown[]): Promise<{ rows: unknown[] }> };
  return { executeSql: (text, values) => connection.query(text, values) };
}
