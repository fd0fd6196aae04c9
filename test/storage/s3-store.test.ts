import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { pino } from 'pino';

import { StorageNotFoundError } from '../../src/storage/blob-store.js';
import { blobKey, uploadKey } from '../../src/storage/keys.js';
import { createS3Store, type S3BlobStore, type S3StoreOptions } from '../../src/storage/s3-store.js';
import { describeBlobStoreConformance } from './blob-store.conformance.js';

const MIB = 1024 * 1024;
const SKIP_REASON = 'S3_ENDPOINT is not set: run scripts/ceph-rgw.sh start, then eval "$(scripts/ceph-rgw.sh env)"';

const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2));
const endpoint = process.env.S3_ENDPOINT;

describe('createS3Store', () => {
  test('rejects a partSize below 5 MiB', () => {
    assert.throws(() => createS3Store({ ...baseOptions('unused'), partSize: 5 * MIB - 1 }), /invalid S3 partSize/);
  });

  test('rejects an access key without a secret key', () => {
    assert.throws(() => createS3Store({ ...baseOptions('unused'), secretAccessKey: undefined }), /accessKeyId and secretAccessKey/);
  });
});

if (endpoint === undefined || endpoint === '') {
  test('s3 blob store against a real endpoint', { skip: SKIP_REASON }, () => {});
} else {
  describeBlobStoreConformance('s3', async () => {
    const bucket = newBucketName();
    const store = createS3Store(baseOptions(bucket));
    await store.ensureBucket();
    return { store, cleanup: () => removeBucket(store, bucket) };
  });

  describe('s3 store', () => {
    const bucket = newBucketName();
    let store: S3BlobStore;
    let client: S3Client;

    before(async () => {
      // A 6 MiB copy limit sends the 12 MiB object below through UploadPartCopy.
      store = createS3Store({ ...baseOptions(bucket), maxCopyObjectSize: 6 * MIB, copyPartSize: 5 * MIB });
      client = createTestClient();
      await store.ensureBucket();
    });

    after(async () => {
      await removeBucket(store, bucket);
      client.destroy();
    });

    test('ensureBucket of an existing bucket succeeds', async () => {
      await store.ensureBucket();
    });

    test('commit copies an object above maxCopyObjectSize in ranges', async () => {
      const data = randomBytes(12 * MIB + 1);
      const digest = createHash('sha256').update(data).digest('hex');
      const finalKey = blobKey(`sha256:${digest}`);
      const started = await store.startUpload(uploadKey(randomUUID()));
      const state = await store.appendUpload(started, Readable.from([data]));

      await store.commitUpload(state, finalKey);

      const read = createHash('sha256');
      for await (const chunk of await store.read(finalKey)) read.update(chunk as Buffer);
      assert.equal(read.digest('hex'), digest);
    });

    test('commit leaves no multipart upload', async () => {
      const tempKey = uploadKey(randomUUID());
      const started = await store.startUpload(tempKey);
      const state = await store.appendUpload(started, Readable.from([randomBytes(9 * MIB)]));

      await store.commitUpload(state, `commit-check/${randomUUID()}`);

      assert.deepEqual(await listMultipartUploads(client, bucket, tempKey), []);
    });

    test('zero-length commit leaves no multipart upload', async () => {
      const tempKey = uploadKey(randomUUID());
      const state = await store.startUpload(tempKey);

      await store.commitUpload(state, `empty-check/${randomUUID()}`);

      assert.deepEqual(await listMultipartUploads(client, bucket, tempKey), []);
    });

    test('abort leaves no multipart upload', async () => {
      const tempKey = uploadKey(randomUUID());
      const started = await store.startUpload(tempKey);
      const state = await store.appendUpload(started, Readable.from([randomBytes(9 * MIB)]));

      await store.abortUpload(state);

      assert.deepEqual(await listMultipartUploads(client, bucket, tempKey), []);
    });

    test('read in a missing bucket rejects with NoSuchBucket, not StorageNotFoundError', async () => {
      const missing = createS3Store(baseOptions(newBucketName()));

      const error = await missing.read('any-key').then(
        () => null,
        (error: unknown) => error,
      );
      missing.close();

      assert.ok(error instanceof Error, 'read of a missing bucket resolved');
      assert.ok(!(error instanceof StorageNotFoundError), 'NoSuchBucket was reported as a missing key');
      assert.equal(error.name, 'NoSuchBucket');
    });
  });
}

function baseOptions(bucket: string): S3StoreOptions {
  return {
    endpoint,
    region: process.env.S3_REGION ?? 'us-east-1',
    bucket,
    accessKeyId: process.env.S3_ACCESS_KEY_ID ?? 'unset',
    secretAccessKey: process.env.S3_SECRET_ACCESS_KEY ?? 'unset',
    forcePathStyle: ['1', 'true'].includes(process.env.S3_FORCE_PATH_STYLE ?? ''),
    logger,
  };
}

function createTestClient(): S3Client {
  const options = baseOptions('unused');
  return new S3Client({
    endpoint: options.endpoint,
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    credentials: { accessKeyId: options.accessKeyId ?? '', secretAccessKey: options.secretAccessKey ?? '' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Returns a bucket name that no earlier test run used. */
function newBucketName(): string {
  return `portcullis-test-${randomUUID()}`;
}

async function listMultipartUploads(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const output = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (output.Uploads ?? []).map((upload) => upload.UploadId ?? '');
}

/** Deletes every object and unfinished multipart upload of a test bucket, then the bucket, and closes the store. */
async function removeBucket(store: S3BlobStore, bucket: string): Promise<void> {
  const client = createTestClient();
  try {
    for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket })) {
      for (const object of page.Contents ?? []) {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key }));
      }
    }

    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const upload of uploads.Uploads ?? []) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
    }

    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
    store.close();
  }
}
