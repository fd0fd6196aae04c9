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

/** Builds the event sink that writes to the audit trail and to the log. */
export function createAuditSink(db: Knex, logger: pino.Logger, settings: AuditConfig, writer: AuditWriter = new AuditWriter(db, logger, { lockTimeoutMs: settings.lockTimeoutMs })): AuditEventSink {
  return new AuditEventSink(writer, { replica: settings.replica, failOpenPulls: settings.failOpenPulls }, logEventSink);
}

/**
 * Prepares the audit trail when a gateway starts: creates the coming month
 * partitions, and records the gateway's start with its audit settings, so a
 * choice to serve pulls without their events is itself on the trail.
 */
export async function startAuditTrail(db: Knex, logger: pino.Logger, settings: AuditConfig, details: { version: string }): Promise<void> {
  const partitions = await ensurePartitions(db, new Date());
  if (partitions.created.length > 0) logger.info({ partitions: partitions.created }, 'audit partitions created');
  if (partitions.skipped.length > 0) logger.warn({ partitions: partitions.skipped }, 'audit rows of these months are in the default partition; their month partitions were not created');
  await db.transaction(async (trx) => {
    await appendEvents(trx, [{ ...emptyInput('gateway.start', settings.replica), actorSubject: 'portcullis', details: { failOpenPulls: settings.failOpenPulls, version: details.version } }]);
  });
  if (settings.failOpenPulls) logger.warn('AUDIT_FAIL_OPEN_PULLS is set: pulls are served even when their audit events cannot be written');
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
