/**
 * A gateway for the audit pull benchmark: the same app as `portcullis serve`,
 * with the audit trail on or off, on an existing database and storage
 * directory. Prints "ready <port>" once it listens.
 *
 * Usage: node --import tsx bench/support/pull-server.ts <audit|off> <database url> <storage dir>
 */
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createApp } from '../../src/app.js';
import { logEventSink } from '../../src/audit/registry-events.js';
import { createAuditSink } from '../../src/audit/setup.js';
import { createAuthServices } from '../../src/auth/setup.js';
import { loadConfig } from '../../src/config.js';
import { createDatabase } from '../../src/db/database.js';
import { JobQueue } from '../../src/jobs/queue.js';
import { openBlobStore } from '../../src/storage/from-config.js';

const [mode, databaseUrl, storageDir] = process.argv.slice(2);
if ((mode !== 'audit' && mode !== 'off') || !databaseUrl || !storageDir) {
  console.error('usage: pull-server.ts <audit|off> <database url> <storage dir>');
  process.exit(2);
}

const logger = pino({ level: 'silent' });
const defaults = loadConfig({});
const db = createDatabase(databaseUrl);
const opened = await openBlobStore({ driver: 'filesystem', rootDir: storageDir }, logger);
const events = mode === 'audit' ? createAuditSink(db, logger, { replica: 'bench', failOpenPulls: false, lockTimeoutMs: 5000 }) : logEventSink;
const auth = await createAuthServices(db, defaults.auth, events, logger);
const jobs = new JobQueue({ connectionString: databaseUrl, logger, workers: false });
const app = createApp({ config: { publicUrl: null, trustedProxies: [], attachments: defaults.attachments, blockedRegistries: defaults.blockedRegistries }, db, store: opened.store, logger, auth, events, jobs });
const server = app.express.listen(0, '127.0.0.1', () => {
  console.log(`ready ${(server.address() as AddressInfo).port}`);
});
process.on('SIGTERM', () => {
  server.close();
  void jobs.stop().then(() => db.destroy()).then(() => process.exit(0));
});
