import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { superuserPassword } from '../../src/db/embedded-postgres.js';

test('new cluster gets a random password', async () => {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'portcullis-password-'));
  const first = await superuserPassword(directory, true);
  assert.notEqual(first, 'portcullis');
  assert.ok(first.length >= 32, `password has ${first.length} characters`);
  await rm(directory, { recursive: true, force: true });
});

test('password file is readable by its owner only', async () => {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'portcullis-password-'));
  await superuserPassword(directory, true);
  const mode = (await stat(path.join(directory, 'postgres.password'))).mode & 0o777;
  assert.equal(mode, 0o600);
  await rm(directory, { recursive: true, force: true });
});

test('password is read back on the next start', async () => {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'portcullis-password-'));
  const first = await superuserPassword(directory, true);
  assert.equal(await superuserPassword(directory, false), first);
  await rm(directory, { recursive: true, force: true });
});

test('cluster without a password file keeps the legacy password', async () => {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'portcullis-password-'));
  assert.equal(await superuserPassword(directory, false), 'portcullis');
  await rm(directory, { recursive: true, force: true });
});
