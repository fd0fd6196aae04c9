import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { lockDataDir } from '../../src/db/data-dir-lock.js';

async function temporaryDirectory(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'portcullis-lock-'));
}

test('lock writes the process id', async () => {
  const directory = await temporaryDirectory();
  const lock = await lockDataDir(directory);
  assert.equal((await readFile(path.join(directory, 'gateway.pid'), 'utf8')).trim(), String(process.pid));
  await lock.release();
  await rm(directory, { recursive: true, force: true });
});

test('lock held by a live process is refused', async () => {
  const directory = await temporaryDirectory();
  // Process 1 (init) always runs, so it stands for another live gateway.
  await writeFile(path.join(directory, 'gateway.pid'), '1\n');
  await assert.rejects(lockDataDir(directory), /in use by another gateway \(process 1\)/);
  await rm(directory, { recursive: true, force: true });
});

test('lock left by a dead process is taken over', async () => {
  const directory = await temporaryDirectory();
  await writeFile(path.join(directory, 'gateway.pid'), '999999999\n');
  const lock = await lockDataDir(directory);
  assert.equal((await readFile(path.join(directory, 'gateway.pid'), 'utf8')).trim(), String(process.pid));
  await lock.release();
  await rm(directory, { recursive: true, force: true });
});

test('release removes the lock file', async () => {
  const directory = await temporaryDirectory();
  const lock = await lockDataDir(directory);
  await lock.release();
  await assert.rejects(readFile(path.join(directory, 'gateway.pid')), { code: 'ENOENT' });
  await rm(directory, { recursive: true, force: true });
});
