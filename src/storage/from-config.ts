import type pino from 'pino';
import type { Config } from '../config.js';
import type { BlobStore } from './blob-store.js';
import { createFilesystemStore } from './filesystem-store.js';
import { createS3Store } from './s3-store.js';

/** An opened blob store and how to release it. */
export interface OpenedStore {
  store: BlobStore;
  close(): void;
}

/** Opens the configured blob store; for S3 it creates the bucket when missing. */
export async function openBlobStore(storage: Config['storage'], logger: pino.Logger): Promise<OpenedStore> {
  if (storage.driver === 'filesystem') {
    return { store: createFilesystemStore({ rootDir: storage.rootDir, logger }), close: () => {} };
  }
  const store = createS3Store({
    ...(storage.endpoint ? { endpoint: storage.endpoint } : {}),
    region: storage.region,
    bucket: storage.bucket,
    ...(storage.accessKeyId && storage.secretAccessKey ? { accessKeyId: storage.accessKeyId, secretAccessKey: storage.secretAccessKey } : {}),
    forcePathStyle: storage.forcePathStyle,
    logger,
  });
  await store.ensureBucket();
  return { store, close: () => store.close() };
}
