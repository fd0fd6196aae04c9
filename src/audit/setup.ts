import type { Knex } from 'knex';
import type pino from 'pino';
import type { AuditConfig, Config } from '../config.js';
import { AuditEventSink } from './audit-sink.js';
import { logEventSink } from './registry-events.js';
import { appendEvents, emptyInput, ensurePartitions } from './store.js';
import { AuditWriter } from './writer.js';

/** Returns the audit settings of a configuration. */
export function auditSettingsOf(config: Config): AuditConfig {
  return config.audit;
}

/**
 * Builds the event sink that writes to the audit trail and, unless
 * `logEvents` is false, to the log as well.
 */
export function createAuditSink(db: Knex, logger: pino.Logger, settings: AuditConfig, options: { writer?: AuditWriter; logEvents?: boolean } = {}): AuditEventSink {
  const writer = options.writer ?? new AuditWriter(db, logger, { lockTimeoutMs: settings.lockTimeoutMs, replica: settings.replica });
  return new AuditEventSink(writer, { replica: settings.replica, failOpenPulls: settings.failOpenPulls }, options.logEvents === false ? undefined : logEventSink);
}

/** Prepares the audit trail before a gateway writes to it: creates the month partitions of this month and the next two. */
export async function prepareAuditTrail(db: Knex, logger: pino.Logger): Promise<void> {
  const partitions = await ensurePartitions(db, new Date());
  if (partitions.created.length > 0) logger.info({ partitions: partitions.created }, 'audit partitions created');
  if (partitions.skipped.length > 0) logger.warn({ partitions: partitions.skipped }, 'audit rows of these months are in the default partition; their month partitions were not created');
}

/**
 * Records that a gateway started serving, with its audit settings, so that a
 * choice to serve pulls without their events is itself on the trail.
 */
export async function recordGatewayStart(db: Knex, logger: pino.Logger, settings: AuditConfig, details: { version: string; url: string }): Promise<void> {
  await db.transaction(async (trx) => {
    const facts = { failOpenPulls: settings.failOpenPulls, lockTimeoutMs: settings.lockTimeoutMs, version: details.version, url: details.url };
    await appendEvents(trx, [{ ...emptyInput('gateway.start', settings.replica), actorSubject: 'portcullis', details: facts }], { lockTimeoutMs: settings.lockTimeoutMs });
  });
  if (settings.failOpenPulls) logger.warn('AUDIT_FAIL_OPEN_PULLS is set: pulls are served even when their audit events cannot be written');
}

/** Records the creation of the first administrator at the first start, in the transaction that creates it. */
export async function recordBootstrapAdmin(trx: Knex.Transaction, settings: AuditConfig, username: string): Promise<void> {
  await appendEvents(trx, [{ ...emptyInput('account.change', settings.replica), actorSubject: 'portcullis', details: { change: 'user.create', target: `user:${username}`, by: 'first start', groups: ['admins'] } }], {
    lockTimeoutMs: settings.lockTimeoutMs,
  });
}

/** Creates month partitions ahead of time; the server calls it every minute, and most calls find nothing to create. */
export async function maintainAuditPartitions(db: Knex, logger: pino.Logger): Promise<void> {
  try {
    const partitions = await ensurePartitions(db, new Date());
    if (partitions.created.length > 0) logger.info({ partitions: partitions.created }, 'audit partitions created');
  } catch (error) {
    logger.error({ err: error }, 'audit partitions could not be created; events go to the default partition meanwhile');
  }
}
