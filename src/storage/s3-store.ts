import { randomUUID } from 'node:crypto';
import { Readable, Transform, pipeline } from 'node:stream';

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  paginateListObjectsV2,
  type BucketLocationConstraint,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Logger } from 'pino';

import {
  StorageNotFoundError,
  StorageUnavailableError,
  type BlobStore,
  type ByteRange,
  type ObjectInfo,
  type UploadState,
} from './blob-store.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** S3 rejects a multipart upload whose parts, except the last, are smaller than this. */
const MIN_PART_SIZE = 5 * MIB;
/** S3's limit on the size of one part, uploaded or copied. */
const MAX_PART_SIZE = 5 * GIB;
/** S3's limit on the number of parts of one multipart upload. */
const MAX_PARTS = 10_000;
const DEFAULT_PART_SIZE = 8 * MIB;
/** S3's limit on the size of an object that one CopyObject copies. Larger objects are copied in ranges with UploadPartCopy. */
const MAX_COPY_OBJECT_SIZE = 5 * GIB;
const DEFAULT_COPY_PART_SIZE = 1 * GIB;

/** Options of the S3 driver. */
export interface S3StoreOptions {
  /** Endpoint URL of an S3-compatible service. When omitted, the SDK uses the AWS endpoint of `region`. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Static credentials, both or neither. Without them the SDK's default credential chain applies. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Addresses the bucket in the path (`endpoint/bucket/key`), as most S3-compatible services expect. */
  forcePathStyle: boolean;
  /**
   * Size in bytes of each uploaded part but the last, and the memory one upload buffers. Default 8 MiB, minimum 5 MiB.
   * S3 allows 10,000 parts, so 8 MiB parts limit an upload to about 78 GiB.
   */
  partSize?: number;
  /** Largest object in bytes that commitUpload copies with one CopyObject. Default 5 GiB, the S3 limit. */
  maxCopyObjectSize?: number;
  /** Size in bytes of each UploadPartCopy range for objects above maxCopyObjectSize. Default 1 GiB. */
  copyPartSize?: number;
  logger: Logger;
}

/** A BlobStore on an S3 bucket. */
export interface S3BlobStore extends BlobStore {
  readonly driver: 's3';
  /** Creates the bucket unless it exists. */
  ensureBucket(): Promise<void>;
  /** Closes the client's connections. */
  close(): void;
}

/** One uploaded part of a multipart upload. */
export interface S3UploadPart {
  partNumber: number;
  etag: string;
  size: number;
}

/**
 * Upload state of the S3 driver. Bytes live in the parts of the multipart
 * upload `uploadId` at `tempKey`, followed by a tail object shorter than one
 * part. `size` is the sum of the part sizes and `tailSize`.
 */
export interface S3UploadState extends UploadState {
  driver: 's3';
  tempKey: string;
  uploadId: string;
  parts: S3UploadPart[];
  /** Key of the object that contains the bytes after the last part, or null when there are none. */
  tailKey: string | null;
  tailSize: number;
}

/** A source of bytes that come before an append's body: a previous tail, or a range of the temp object. */
interface LeadingBytes {
  key: string;
  range?: ByteRange;
  size: number;
}

/**
 * Creates a BlobStore on an S3 bucket.
 *
 * An upload is a multipart upload at its temp key. Every part but the last
 * has exactly `partSize` bytes, because S3 requires at least 5 MiB for those.
 * The bytes after the last full part are kept in a tail object whose key is
 * new for every append, so an append never changes what an older state
 * refers to. commitUpload sends the tail as the last part, completes the
 * multipart upload into the temp object and copies that to the final key.
 *
 * readUpload has to complete the multipart upload too, because S3 offers no
 * read of the parts of an unfinished one. A later appendUpload notices that
 * the temp object exists and opens a new multipart upload whose first parts
 * are server-side copies of the temp object's bytes.
 */
export function createS3Store(options: S3StoreOptions): S3BlobStore {
  const { bucket } = options;
  const partSize = options.partSize ?? DEFAULT_PART_SIZE;
  const maxCopyObjectSize = options.maxCopyObjectSize ?? MAX_COPY_OBJECT_SIZE;
  const copyPartSize = options.copyPartSize ?? DEFAULT_COPY_PART_SIZE;
  validateOptions(options, partSize, maxCopyObjectSize, copyPartSize);

  const logger = options.logger.child({ component: 'blob-store', driver: 's3', bucket });
  const client = createClient(options, logger);

  async function headObject(key: string): Promise<ObjectInfo | null> {
    try {
      const output = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { size: output.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async function getObject(key: string, range?: ByteRange): Promise<Readable> {
    try {
      const output = await client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
      if (!(output.Body instanceof Readable)) throw new Error(`GetObject of ${key} returned no readable body`);
      return output.Body;
    } catch (error) {
      if (isNotFound(error)) throw new StorageNotFoundError(key);
      throw error;
    }
  }

  async function putObject(key: string, data: Buffer): Promise<void> {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, ContentLength: data.length }));
  }

  async function deleteObject(key: string): Promise<void> {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }

  async function* listObjects(prefix: string): AsyncGenerator<{ key: string; lastModified: Date }> {
    for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: prefix })) {
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield { key: object.Key, lastModified: object.LastModified ?? new Date(0) };
      }
    }
  }

  async function uploadPart(upload: S3UploadState, uploadId: string, partNumber: number, data: Buffer): Promise<S3UploadPart> {
    if (partNumber > MAX_PARTS) {
      throw new Error(`upload ${upload.tempKey} needs more than ${MAX_PARTS} parts of ${partSize} bytes`);
    }

    try {
      const output = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: upload.tempKey,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: data,
          ContentLength: data.length,
        }),
      );
      if (!output.ETag) throw new Error(`UploadPart ${partNumber} of ${upload.tempKey} returned no ETag`);
      return { partNumber, etag: output.ETag, size: data.length };
    } catch (error) {
      if (isNotFound(error)) throw new StorageNotFoundError(upload.tempKey);
      throw error;
    }
  }

  /** Returns whether the multipart upload of a state still accepts parts. */
  async function isMultipartUploadOpen(upload: S3UploadState): Promise<boolean> {
    try {
      await client.send(new ListPartsCommand({ Bucket: bucket, Key: upload.tempKey, UploadId: upload.uploadId, MaxParts: 1 }));
      return true;
    } catch (error) {
      // Ceph RGW returns NoSuchKey, not NoSuchUpload, for an aborted or completed upload.
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** Aborts a multipart upload. An upload that is already gone counts as aborted. */
  async function abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async function abortQuietly(key: string, uploadId: string): Promise<void> {
    try {
      await abortMultipartUpload(key, uploadId);
    } catch (error) {
      logger.warn({ err: error, key, uploadId }, 'failed to abort multipart upload');
    }
  }

  /**
   * Makes the temp object contain the upload's bytes: uploads the tail as the
   * last part and completes the multipart upload, unless an earlier
   * readUpload or an interrupted commit already did.
   */
  async function completeIntoTempObject(upload: S3UploadState): Promise<void> {
    const existing = await headObject(upload.tempKey);
    if (existing?.size === upload.size) return;

    const parts = [...upload.parts];
    if (upload.tailKey !== null) {
      const tail = await readIntoBuffer(await getObject(upload.tailKey), upload.tailSize, upload.tailKey);
      parts.push(await uploadPart(upload, upload.uploadId, parts.length + 1, tail));
    }

    try {
      // The ETag of the completed object is not used: Ceph RGW returns an empty one.
      await client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: upload.tempKey,
          UploadId: upload.uploadId,
          MultipartUpload: { Parts: parts.map((part): CompletedPart => ({ PartNumber: part.partNumber, ETag: part.etag })) },
        }),
      );
    } catch (error) {
      if (isNotFound(error)) throw new StorageNotFoundError(upload.tempKey);
      throw error;
    }

    const completed = await headObject(upload.tempKey);
    if (completed?.size !== upload.size) {
      throw new Error(`completed upload ${upload.tempKey} has ${completed?.size ?? 'no'} bytes, expected ${upload.size}`);
    }
  }

  /**
   * Opens a new multipart upload at the temp key of an upload that readUpload
   * completed. Its first parts are copies of the temp object's full parts, and
   * the remaining bytes are returned to be sent before the next body.
   */
  async function reopenCompletedUpload(upload: S3UploadState): Promise<{ uploadId: string; parts: S3UploadPart[]; leading: LeadingBytes | null }> {
    const uploadId = await createMultipartUpload(upload.tempKey);
    const parts: S3UploadPart[] = [];
    const fullParts = Math.floor(upload.size / partSize);

    try {
      for (let partNumber = 1; partNumber <= fullParts; partNumber += 1) {
        const start = (partNumber - 1) * partSize;
        const etag = await copyPart(upload.tempKey, upload.tempKey, uploadId, partNumber, { start, end: start + partSize - 1 });
        parts.push({ partNumber, etag, size: partSize });
      }
    } catch (error) {
      await abortQuietly(upload.tempKey, uploadId);
      throw error;
    }

    const start = fullParts * partSize;
    const leading = start < upload.size ? { key: upload.tempKey, range: { start, end: upload.size - 1 }, size: upload.size - start } : null;
    return { uploadId, parts, leading };
  }

  async function createMultipartUpload(key: string): Promise<string> {
    const output = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    if (!output.UploadId) throw new Error(`CreateMultipartUpload of ${key} returned no UploadId`);
    return output.UploadId;
  }

  async function copyPart(sourceKey: string, targetKey: string, uploadId: string, partNumber: number, range: ByteRange): Promise<string> {
    try {
      const output = await client.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: targetKey,
          UploadId: uploadId,
          PartNumber: partNumber,
          CopySource: copySource(bucket, sourceKey),
          CopySourceRange: `bytes=${range.start}-${range.end}`,
        }),
      );
      const etag = output.CopyPartResult?.ETag;
      if (!etag) throw new Error(`UploadPartCopy ${partNumber} of ${targetKey} returned no ETag`);
      return etag;
    } catch (error) {
      if (isNotFound(error)) throw new StorageNotFoundError(sourceKey);
      throw error;
    }
  }

  /** Copies an object inside the bucket: with CopyObject up to maxCopyObjectSize, in UploadPartCopy ranges above. */
  async function copyObject(sourceKey: string, targetKey: string, size: number): Promise<void> {
    if (size <= maxCopyObjectSize) {
      try {
        await client.send(new CopyObjectCommand({ Bucket: bucket, Key: targetKey, CopySource: copySource(bucket, sourceKey) }));
      } catch (error) {
        if (isNotFound(error)) throw new StorageNotFoundError(sourceKey);
        throw error;
      }
      return;
    }

    const rangeSize = Math.max(copyPartSize, Math.ceil(size / MAX_PARTS));
    const uploadId = await createMultipartUpload(targetKey);
    try {
      const parts: CompletedPart[] = [];
      for (let start = 0, partNumber = 1; start < size; start += rangeSize, partNumber += 1) {
        const range = { start, end: Math.min(start + rangeSize, size) - 1 };
        const etag = await copyPart(sourceKey, targetKey, uploadId, partNumber, range);
        parts.push({ PartNumber: partNumber, ETag: etag });
      }
      await client.send(
        new CompleteMultipartUploadCommand({ Bucket: bucket, Key: targetKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
      );
    } catch (error) {
      await abortQuietly(targetKey, uploadId);
      throw error;
    }
  }

  /**
   * Deletes the temp object and every tail object of an upload. The tails are
   * found by listing, which also catches tails of appends that failed or whose
   * state was never persisted.
   */
  async function deleteStagedObjects(upload: S3UploadState): Promise<void> {
    await deleteObject(upload.tempKey);
    for await (const { key } of listObjects(tailKeyPrefix(upload.tempKey))) await deleteObject(key);
  }

  async function deleteStagedObjectsQuietly(upload: S3UploadState): Promise<void> {
    try {
      await deleteStagedObjects(upload);
    } catch (error) {
      logger.warn({ err: error, key: upload.tempKey }, 'failed to delete staged upload objects');
    }
  }

  /** Aborts the multipart upload until ListParts no longer finds it, since a part upload in flight during an abort can store parts. */
  async function abortUntilGone(upload: S3UploadState): Promise<void> {
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      await abortMultipartUpload(upload.tempKey, upload.uploadId);
      if (!(await isMultipartUploadOpen(upload))) return;
    }
    logger.warn({ key: upload.tempKey, uploadId: upload.uploadId }, 'multipart upload still lists parts after 3 aborts');
  }

  return {
    driver: 's3',

    async ensureBucket(): Promise<void> {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
        return;
      } catch (error) {
        if (!isNotFound(error) && !hasName(error, 'NoSuchBucket')) throw error;
      }

      try {
        // us-east-1 is the default location, and S3 rejects it as an explicit LocationConstraint.
        await client.send(
          new CreateBucketCommand({
            Bucket: bucket,
            CreateBucketConfiguration:
              options.region === 'us-east-1' ? undefined : { LocationConstraint: options.region as BucketLocationConstraint },
          }),
        );
        logger.info('created bucket');
      } catch (error) {
        // Another process created it first.
        if (!hasName(error, 'BucketAlreadyOwnedByYou')) throw error;
      }
    },

    close(): void {
      client.destroy();
    },

    async stat(key: string): Promise<ObjectInfo | null> {
      return headObject(key);
    },

    async read(key: string, range?: ByteRange): Promise<Readable> {
      if (range) assertValidRange(range);
      return getObject(key, range);
    },

    async write(key: string, body: Readable): Promise<ObjectInfo> {
      let size = 0;
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          size += chunk.length;
          callback(null, chunk);
        },
      });
      // pipeline destroys `counted` when `body` fails, so the Upload below rejects. The callback has nothing to add.
      pipeline(body, counted, () => {});

      // queueSize 1 keeps at most about one part in memory. The object appears
      // only when the PutObject or CompleteMultipartUpload succeeds, and a
      // failed Upload aborts its multipart upload.
      const upload = new Upload({
        client,
        params: { Bucket: bucket, Key: key, Body: counted },
        partSize,
        queueSize: 1,
        leavePartsOnError: false,
      });
      try {
        await upload.done();
      } catch (error) {
        // Stops the body too, so that a failed request does not leave it paused and unread.
        counted.destroy();
        throw error;
      }
      return { size };
    },

    async delete(key: string): Promise<void> {
      await deleteObject(key);
    },

    list(prefix: string): AsyncIterable<{ key: string; lastModified: Date }> {
      return listObjects(prefix);
    },

    async startUpload(tempKey: string): Promise<S3UploadState> {
      const uploadId = await createMultipartUpload(tempKey);
      return { driver: 's3', tempKey, uploadId, parts: [], tailKey: null, tailSize: 0, size: 0 };
    },

    async appendUpload(state: UploadState, body: Readable): Promise<S3UploadState> {
      const upload = parseUploadState(state);

      let uploadId = upload.uploadId;
      let parts = [...upload.parts];
      let leading: LeadingBytes | null = upload.tailKey === null ? null : { key: upload.tailKey, size: upload.tailSize };
      let reopened = false;

      if (!(await isMultipartUploadOpen(upload))) {
        const completed = await headObject(upload.tempKey);
        if (completed?.size !== upload.size) throw new StorageNotFoundError(upload.tempKey);
        ({ uploadId, parts, leading } = await reopenCompletedUpload(upload));
        reopened = true;
      }

      try {
        const appended = await appendParts(upload, uploadId, parts, leading, body);
        if (appended === null) {
          if (reopened) await abortQuietly(upload.tempKey, uploadId);
          return upload;
        }
        return appended;
      } catch (error) {
        // A new multipart upload is referenced by no state until this call returns.
        if (reopened) await abortQuietly(upload.tempKey, uploadId);
        throw error;
      }
    },

    async readUpload(state: UploadState): Promise<Readable> {
      const upload = parseUploadState(state);
      if (upload.size === 0) {
        if (!(await isMultipartUploadOpen(upload))) throw new StorageNotFoundError(upload.tempKey);
        return Readable.from([]);
      }

      // S3 cannot read the parts of an unfinished multipart upload.
      await completeIntoTempObject(upload);
      return getObject(upload.tempKey, { start: 0, end: upload.size - 1 });
    },

    async commitUpload(state: UploadState, finalKey: string): Promise<void> {
      const upload = parseUploadState(state);

      if ((await headObject(finalKey)) !== null) {
        // Final keys are content-addressed, so the existing object contains the same bytes.
        await abortQuietly(upload.tempKey, upload.uploadId);
        await deleteStagedObjectsQuietly(upload);
        return;
      }

      if (upload.size === 0) {
        // S3 cannot complete a multipart upload without parts.
        if (!(await isMultipartUploadOpen(upload))) throw new StorageNotFoundError(upload.tempKey);
        await putObject(finalKey, Buffer.alloc(0));
        await abortQuietly(upload.tempKey, upload.uploadId);
        await deleteStagedObjectsQuietly(upload);
        return;
      }

      await completeIntoTempObject(upload);
      await copyObject(upload.tempKey, finalKey, upload.size);
      // The blob is in place, so a failed deletion is only logged. The leftovers stay under the temp key's prefix.
      await deleteStagedObjectsQuietly(upload);
    },

    async abortUpload(state: UploadState): Promise<void> {
      const upload = parseUploadState(state);
      await abortUntilGone(upload);
      await deleteStagedObjects(upload);
    },
  };

  /**
   * Sends the leading bytes and then the body as parts of `partSize`, and
   * stores the remainder as a new tail object. Returns the new state, or null
   * when the body was empty.
   */
  async function appendParts(
    upload: S3UploadState,
    uploadId: string,
    parts: S3UploadPart[],
    leading: LeadingBytes | null,
    body: Readable,
  ): Promise<S3UploadState | null> {
    const pending = new PartBuffer();
    const sendFullParts = async (): Promise<void> => {
      while (pending.length >= partSize) {
        parts.push(await uploadPart(upload, uploadId, parts.length + 1, pending.take(partSize)));
      }
    };

    if (leading !== null) {
      let leadingSize = 0;
      for await (const chunk of await getObject(leading.key, leading.range)) {
        const buffer = toBuffer(chunk);
        leadingSize += buffer.length;
        pending.push(buffer);
        await sendFullParts();
      }
      if (leadingSize !== leading.size) {
        throw new Error(`object ${leading.key} returned ${leadingSize} bytes of the upload, expected ${leading.size}`);
      }
    }

    let received = 0;
    for await (const chunk of body) {
      const buffer = toBuffer(chunk);
      received += buffer.length;
      pending.push(buffer);
      await sendFullParts();
    }
    if (received === 0) return null;

    const size = upload.size + received;
    const tail = pending.take(pending.length);
    if (parts.length + (tail.length > 0 ? 1 : 0) > MAX_PARTS) {
      throw new Error(`upload ${upload.tempKey} needs more than ${MAX_PARTS} parts of ${partSize} bytes`);
    }

    let tailKey: string | null = null;
    if (tail.length > 0) {
      // NOTE: tails of older states stay until commitUpload or abortUpload,
      // so an upload of many short appends stores up to partSize extra bytes
      // per append until then.
      tailKey = `${tailKeyPrefix(upload.tempKey)}${size}-${randomUUID()}`;
      await putObject(tailKey, tail);
    }
    return { driver: 's3', tempKey: upload.tempKey, uploadId, parts, tailKey, tailSize: tail.length, size };
  }
}

/** Chunks waiting to fill a part, less than one part plus one chunk in total. */
class PartBuffer {
  private chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Removes and returns the first `size` bytes. */
  take(size: number): Buffer {
    const all = Buffer.concat(this.chunks, this.length);
    const rest = all.subarray(size);
    // Copy the rest so that it does not keep the whole concatenated buffer alive.
    this.chunks = rest.length > 0 ? [Buffer.from(rest)] : [];
    this.length = rest.length;
    return all.subarray(0, size);
  }
}

function createClient(options: S3StoreOptions, logger: Logger): S3Client {
  const credentials =
    options.accessKeyId !== undefined && options.secretAccessKey !== undefined
      ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey }
      : undefined;

  const client = new S3Client({
    endpoint: options.endpoint,
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    credentials,
    // Checksums only where S3 requires them: with the SDK default, a streamed
    // PutObject is sent aws-chunked, which Ceph RGW rejects with 411 Length Required.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  // The retry middleware has high priority in the same step, so this one
  // runs inside it, once per attempt.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        if (isRetryable(error)) {
          logger.warn({ err: error, command: context.commandName }, 'S3 request attempt failed, and the SDK retries it unless this was the last attempt');
        }
        throw error;
      }
    },
    { step: 'finalizeRequest', priority: 'low', name: 'logFailedAttempts' },
  );

  // The initialize step wraps the retries, so this middleware gets only the final failure.
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        if (isRetryable(error)) throw new StorageUnavailableError({ cause: error });
        throw error;
      }
    },
    { step: 'initialize', name: 'translateUnavailable' },
  );
  return client;
}

function validateOptions(options: S3StoreOptions, partSize: number, maxCopyObjectSize: number, copyPartSize: number): void {
  if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined)) {
    throw new Error('invalid S3 store options: set both accessKeyId and secretAccessKey, or neither');
  }
  if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
    throw new Error(`invalid S3 partSize ${partSize}: expected an integer from ${MIN_PART_SIZE} to ${MAX_PART_SIZE} bytes`);
  }
  if (!Number.isSafeInteger(maxCopyObjectSize) || maxCopyObjectSize < 0 || maxCopyObjectSize > MAX_COPY_OBJECT_SIZE) {
    throw new Error(`invalid S3 maxCopyObjectSize ${maxCopyObjectSize}: expected an integer from 0 to ${MAX_COPY_OBJECT_SIZE} bytes`);
  }
  if (!Number.isSafeInteger(copyPartSize) || copyPartSize < MIN_PART_SIZE || copyPartSize > MAX_PART_SIZE) {
    throw new Error(`invalid S3 copyPartSize ${copyPartSize}: expected an integer from ${MIN_PART_SIZE} to ${MAX_PART_SIZE} bytes`);
  }
}

function parseUploadState(state: UploadState): S3UploadState {
  const { driver, tempKey, uploadId, parts, tailKey, tailSize, size } = state;
  const valid =
    driver === 's3' &&
    typeof tempKey === 'string' &&
    typeof uploadId === 'string' &&
    Array.isArray(parts) &&
    parts.every(isUploadPart) &&
    (tailKey === null || typeof tailKey === 'string') &&
    isByteCount(tailSize) &&
    (tailKey === null) === (tailSize === 0) &&
    isByteCount(size) &&
    parts.reduce((sum: number, part: S3UploadPart) => sum + part.size, tailSize) === size;
  if (!valid) {
    throw new Error('invalid upload state for the S3 driver: expected driver "s3", tempKey, uploadId, parts, tailKey, tailSize and a matching size');
  }
  return { driver, tempKey, uploadId, parts: parts as S3UploadPart[], tailKey, tailSize: tailSize as number, size };
}

function isUploadPart(value: unknown): value is S3UploadPart {
  if (typeof value !== 'object' || value === null) return false;
  const part = value as Record<string, unknown>;
  return Number.isSafeInteger(part.partNumber) && typeof part.etag === 'string' && isByteCount(part.size);
}

function isByteCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function assertValidRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start) {
    throw new RangeError(`invalid byte range ${range.start}-${range.end}: expected integers with 0 <= start <= end`);
  }
}

/** Returns the prefix of an upload's tail keys. A tail key continues with the upload size at its end and a UUID. */
function tailKeyPrefix(tempKey: string): string {
  return `${tempKey}.tail-`;
}

/** Returns the x-amz-copy-source value, which S3 expects URL-encoded. */
function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

async function readIntoBuffer(stream: Readable, expectedSize: number, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = toBuffer(chunk);
    size += buffer.length;
    if (size > expectedSize) break;
    chunks.push(buffer);
  }
  if (size !== expectedSize) {
    stream.destroy();
    throw new Error(`object ${key} returned ${size} or more bytes, expected ${expectedSize}`);
  }
  return Buffer.concat(chunks, size);
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError('upload body must be a byte stream');
}

/**
 * Returns whether an SDK error means that the key or the upload does not
 * exist. A missing bucket is a configuration error, not a missing key.
 */
function isNotFound(error: unknown): boolean {
  if (hasName(error, 'NoSuchBucket')) return false;
  if (hasName(error, 'NoSuchKey', 'NoSuchUpload', 'NotFound')) return true;
  return error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404;
}

/** Returns whether the SDK's standard retry strategy retries an error: throttling, 5xx and network errors. */
function isRetryable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (!(error instanceof S3ServiceException)) return true;
  const status = error.$metadata.httpStatusCode;
  return status === undefined || status === 429 || status >= 500;
}

function hasName(error: unknown, ...names: string[]): boolean {
  return error instanceof Error && names.includes(error.name);
}
