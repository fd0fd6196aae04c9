import type { Readable } from 'node:stream';

/** Inclusive byte range, as in an HTTP `Range: bytes=start-end` header. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Size of a stored object, in bytes. */
export interface ObjectInfo {
  size: number;
}

/**
 * Driver-specific state of an unfinished upload. It is stored as JSON in the
 * upload session row, so a session started on one process can be continued by
 * another. `size` is the number of bytes the upload holds.
 */
export interface UploadState {
  size: number;
  [key: string]: unknown;
}

/**
 * Thrown by a store when a key or an upload does not exist. Drivers translate
 * their own not-found errors (ENOENT, NoSuchKey, NoSuchUpload, NotFound) into
 * this one type.
 */
export class StorageNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`storage object not found: ${key}`);
    this.name = 'StorageNotFoundError';
  }
}

/**
 * Thrown by a store when its backend cannot be reached or keeps failing
 * (network errors, timeouts, 5xx responses after the retries). The request
 * fails with 503, because retrying later may succeed.
 */
export class StorageUnavailableError extends Error {
  constructor(options: { cause: unknown }) {
    super('the blob storage backend is unavailable', options);
    this.name = 'StorageUnavailableError';
  }
}

/**
 * Streaming key/value store for blob bytes. The store has no notion of
 * digests, repositories or sessions, because the registry domain decides the keys
 * (see keys.ts) and keeps the metadata in PostgreSQL.
 *
 * No method keeps a whole object in memory.
 */
export interface BlobStore {
  readonly driver: 'filesystem' | 's3';

  /** Returns the object's size, or null when the key does not exist. */
  stat(key: string): Promise<ObjectInfo | null>;

  /** Opens a read stream of the object, or of the inclusive range. Throws StorageNotFoundError. */
  read(key: string, range?: ByteRange): Promise<Readable>;

  /** Writes a whole object from a stream; the object appears only once complete. */
  write(key: string, body: Readable): Promise<ObjectInfo>;

  /** Removes an object; removing a missing key is not an error. */
  delete(key: string): Promise<void>;

  /** Lists keys under a prefix with their last modification time, in pages. */
  list(prefix: string): AsyncIterable<{ key: string; lastModified: Date }>;

  /**
   * Starts an upload whose bytes are staged under `tempKey` (or keys derived
   * from it) until commitUpload. Returns the state to persist.
   */
  startUpload(tempKey: string): Promise<UploadState>;

  /**
   * Appends the whole stream to the upload and returns the new state.
   * The state passed in stays valid until the caller has persisted the
   * returned one. If this call fails part way, or the caller never persists
   * the result, appending to the old state again must work. It must yield the
   * same bytes as if the failed call had never happened.
   */
  appendUpload(state: UploadState, body: Readable): Promise<UploadState>;

  /** Opens a read stream of the bytes uploaded so far (used to re-hash with another algorithm). */
  readUpload(state: UploadState): Promise<Readable>;

  /**
   * Moves the uploaded bytes to `finalKey` so that they appear there at once,
   * and removes the staged data. When an object already exists at `finalKey`
   * (content-addressed keys make that the same bytes), the staged data is just
   * removed.
   */
  commitUpload(state: UploadState, finalKey: string): Promise<void>;

  /** Removes every staged byte of an upload; aborting twice is not an error. */
  abortUpload(state: UploadState): Promise<void>;
}
