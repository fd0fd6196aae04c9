import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { pino } from 'pino';

import { createFilesystemStore } from '../../src/storage/filesystem-store.js';
import { describeBlobStoreConformance } from './blob-store.conformance.js';

describeBlobStoreConformance('filesystem', async () => {
  const rootDir = await mkdtemp(path.join(tmpdir(), 'portcullis-blobs-'));
  const store = createFilesystemStore({ rootDir, logger: pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2)) });
  return {
    store,
    async cleanup() {
      await rm(rootDir, { recursive: true, force: true });
    },
  };
});
