import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { archivePartitions, RetentionError, verifyArchiveFile } from '../audit/retention.js';
import type { Config } from '../config.js';
import { createLogger } from '../logger.js';
import { withCommandDatabase } from './database.js';

function operatorName(): string {
  try {
    return `cli:${os.userInfo().username}`;
  } catch {
    // A container user without a passwd entry has no name.
    return `cli:uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

function parseCutoff(text: string): Date {
  const time = /^\d{4}-\d{2}-\d{2}$/.test(text) ? new Date(`${text}T00:00:00Z`) : new Date(text);
  if (Number.isNaN(time.getTime())) throw new RetentionError(`invalid --before value "${text}": expected a date such as 2026-01-01 or an RFC 3339 time`);
  return time;
}

/**
 * Adds the operator's retention commands to the `audit` command: `archive`,
 * which exports and drops old month partitions through the database, and
 * `verify-archive`, which checks an archive file on its own.
 */
export function registerAuditRetentionCommands(audit: Command, loadConfig: () => Config): void {
  audit
    .command('archive')
    .description('export every audit month partition that ends on or before --before to DIR, then drop it (needs DATABASE_URL or the gateway\'s data directory)')
    .requiredOption('--before <date>', 'cutoff date (UTC), such as 2026-01-01; only whole months before it are archived')
    .requiredOption('--out <dir>', 'directory for the archive files; keep them on storage the auditors trust')
    .action(async (options: { before: string; out: string }) => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, pino.destination(2));
      try {
        const before = parseCutoff(options.before);
        const archived = await withCommandDatabase(config, logger, (db) =>
          archivePartitions(db, { before, directory: path.resolve(options.out), actor: operatorName(), replica: config.audit.replica, logger }),
        );
        if (archived.length === 0) process.stdout.write('no audit partition ends on or before that date\n');
        for (const entry of archived) {
          process.stdout.write(`${entry.partition}: ${entry.events} events (${entry.firstSeq ?? '-'} to ${entry.lastSeq ?? '-'}) -> ${entry.file} sha256:${entry.fileSha256}\n`);
        }
      } catch (error) {
        process.exitCode = 1;
        if (error instanceof RetentionError) process.stderr.write(`portcullis: ${error.message}\n`);
        else logger.error({ err: error }, 'archiving audit partitions failed');
      }
    });

  audit
    .command('verify-archive')
    .description('recompute the hash chain of an archive file written by "audit archive"; exit status 1 when it is broken')
    .argument('<file>', 'archive file')
    .option('--against-database', 'also compare the file with the record that "audit archive" kept in the database (needs DATABASE_URL or the gateway\'s data directory)')
    .action(async (file: string, options: { againstDatabase?: boolean }) => {
      const report = await verifyArchiveFile(file).catch((error: unknown) => {
        process.stderr.write(`portcullis: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      });
      let recordProblem: string | null = null;
      if (options.againstDatabase && report.header) {
        const config = loadConfig();
        const logger = createLogger(config.logLevel, pino.destination(2));
        const partition = report.header.partition;
        const record = await withCommandDatabase(config, logger, (db) => db('audit_archives').where({ partition_name: partition }).first<{ file_sha256: string; last_hash: string | null } | undefined>('file_sha256', 'last_hash'));
        if (!record) recordProblem = `the database has no archive record of ${partition}`;
        else if (record.file_sha256 !== report.sha256) recordProblem = `the file's sha256 differs from the one recorded when ${partition} was archived`;
        else if (record.last_hash !== report.header.lastHash) recordProblem = `the file's last hash differs from the one recorded when ${partition} was archived`;
      }
      process.stdout.write(`${JSON.stringify({ ...report, ...(options.againstDatabase ? { record: recordProblem === null ? 'matches' : recordProblem } : {}) }, null, 2)}\n`);
      if (!report.ok || recordProblem !== null) process.exitCode = 1;
    });
}
