/**
 * Starts an embedded PostgreSQL in a temporary directory, runs the command
 * given as arguments with TEST_DATABASE_URL pointing at it, stops the server
 * and exits with the command's exit code.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: with-embedded-postgres.ts COMMAND [ARGS...]\n');
  process.exit(2);
}

const logger = pino({ level: 'info' }, pino.destination(2));
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-test-pg-'));
// The server runs as the postgres system user, which must be able to enter the directory.
await chmod(dataDir, 0o755);
const postgres = await startEmbeddedPostgres({ dataDir, port: await freePort(), logger });

const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, TEST_DATABASE_URL: postgres.connectionString } });
const exitCode: number = await new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));

await postgres.stop();
await rm(dataDir, { recursive: true, force: true });
process.exit(exitCode);
