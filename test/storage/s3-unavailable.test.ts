import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pino from 'pino';
import { createS3Store } from '../../src/storage/s3-store.js';
import { StorageUnavailableError } from '../../src/storage/blob-store.js';

/** Returns a loopback port that nothing listens on. */
async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

test('unreachable S3 endpoint raises StorageUnavailableError', async () => {
  const store = createS3Store({
    endpoint: `http://127.0.0.1:${await closedPort()}`,
    region: 'us-east-1',
    bucket: 'unreachable',
    accessKeyId: 'key',
    secretAccessKey: 'secret',
    forcePathStyle: true,
    logger: pino({ level: 'silent' }),
  });
  try {
    await assert.rejects(store.stat('blobs/sha256/ab/abc'), StorageUnavailableError);
  } finally {
    store.close();
  }
});
