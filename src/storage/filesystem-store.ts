import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, opendir, rename, rmdir, stat, truncate, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';

import {
  StorageNotFoundError,
  type BlobStore,
  type ByteRange,
  type ObjectInfo,
  type UploadState,
} from './blob-store.js';

/** Options of the filesystem driver. */
export interface FilesystemStoreOptions {
  /** Directory that contains every object, at `<rootDir>/<key>`. Created on the first write. */
  rootDir: string;
  logger: Logger;
}

/** Upload state of the filesystem driver: the bytes are staged in one file at `<rootDir>/<tempKey>`. */
export interface FilesystemUploadState extends UploadState {
  driver: 'filesystem';
  tempKey: string;
}

/**
 * Directory under the root for the temporary files of write(). It is on the
 * same filesystem as the objects, so rename() moves a finished file into
 * place atomically. Keys may not start with it, and list() skips it.
 */
const TEMP_DIR = '.tmp';

/**
 * Creates a BlobStore that keeps each object as a file at `<rootDir>/<key>`.
 *
 * Complete objects appear through rename() of an fsynced file, so a reader
 * sees either the old object, the new one or none. An upload is staged in a
 * single file at `<rootDir>/<tempKey>`. Keys are relative paths of
 * '/'-separated segments, and a key with an empty, '.' or '..' segment is
 * rejected so that no key can name a file outside the root.
 */
export function createFilesystemStore(options: FilesystemStoreOptions): BlobStore {
  const rootDir = path.resolve(options.rootDir);
  const logger = options.logger.child({ component: 'blob-store', driver: 'filesystem' });

  function pathOfKey(key: string): string {
    assertValidKey(key);
    return path.join(rootDir, ...key.split('/'));
  }

  async function stageWrite(body: Readable): Promise<{ tempPath: string; size: number }> {
    const tempDir = path.join(rootDir, TEMP_DIR);
    await mkdir(tempDir, { recursive: true });
    const tempPath = path.join(tempDir, randomUUID());

    try {
      // flush: the file descriptor is fsynced before it is closed.
      await pipeline(body, createWriteStream(tempPath, { flags: 'wx', flush: true }));
      const { size } = await stat(tempPath);
      return { tempPath, size };
    } catch (error) {
      await removeQuietly(tempPath, logger);
      throw error;
    }
  }

  /** Renames a file to a key's path, creating its directories, and fsyncs the directory. */
  async function moveIntoPlace(sourcePath: string, targetPath: string): Promise<void> {
    await mkdir(path.dirname(targetPath), { recursive: true });
    await rename(sourcePath, targetPath);
    await syncDirectory(path.dirname(targetPath));
  }

  /**
   * Removes the empty directories between a staging file and the root. The
   * top-level directory (such as `uploads`) stays, because another upload
   * may be creating a file in it at the same moment.
   */
  async function pruneEmptyDirectories(key: string): Promise<void> {
    const segments = key.split('/').slice(0, -1);
    while (segments.length > 1) {
      const directory = path.join(rootDir, ...segments);
      try {
        await rmdir(directory);
      } catch (error) {
        if (!hasCode(error, 'ENOENT', 'ENOTEMPTY', 'EEXIST')) {
          logger.warn({ err: error, directory }, 'failed to remove empty upload directory');
        }
        return;
      }
      segments.pop();
    }
  }

  async function* walk(directory: string, prefix: string): AsyncGenerator<{ key: string; lastModified: Date }> {
    let entries;
    try {
      entries = await opendir(directory);
    } catch (error) {
      if (hasCode(error, 'ENOENT', 'ENOTDIR')) return;
      throw error;
    }

    for await (const entry of entries) {
      const entryPath = path.join(directory, entry.name);
      const key = path.relative(rootDir, entryPath).split(path.sep).join('/');
      if (directory === rootDir && entry.name === TEMP_DIR) continue;

      if (entry.isDirectory()) {
        // Descend only where keys under this directory can match the prefix.
        if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) yield* walk(entryPath, prefix);
        continue;
      }
      if (!entry.isFile() || !key.startsWith(prefix)) continue;

      try {
        const { mtime } = await stat(entryPath);
        yield { key, lastModified: mtime };
      } catch (error) {
        // The file was removed between readdir and stat.
        if (!hasCode(error, 'ENOENT')) throw error;
      }
    }
  }

  return {
    driver: 'filesystem',

    async stat(key: string): Promise<ObjectInfo | null> {
      try {
        const info = await stat(pathOfKey(key));
        return info.isFile() ? { size: info.size } : null;
      } catch (error) {
        if (hasCode(error, 'ENOENT', 'ENOTDIR')) return null;
        throw error;
      }
    },

    async read(key: string, range?: ByteRange): Promise<Readable> {
      const filePath = pathOfKey(key);
      if (range) assertValidRange(range);

      const handle = await openForReading(filePath, key);
      return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
    },

    async write(key: string, body: Readable): Promise<ObjectInfo> {
      const targetPath = pathOfKey(key);
      const { tempPath, size } = await stageWrite(body);

      try {
        await moveIntoPlace(tempPath, targetPath);
      } catch (error) {
        await removeQuietly(tempPath, logger);
        throw error;
      }
      return { size };
    },

    async delete(key: string): Promise<void> {
      await removeIfExists(pathOfKey(key));
    },

    list(prefix: string): AsyncIterable<{ key: string; lastModified: Date }> {
      assertValidPrefix(prefix);
      // Start at the deepest directory that the prefix names completely.
      const directoryPart = prefix.slice(0, prefix.lastIndexOf('/') + 1);
      const startDirectory = path.join(rootDir, ...directoryPart.split('/').filter((segment) => segment !== ''));
      return walk(startDirectory, prefix);
    },

    async startUpload(tempKey: string): Promise<FilesystemUploadState> {
      const stagingPath = pathOfKey(tempKey);
      await mkdir(path.dirname(stagingPath), { recursive: true });
      const handle = await open(stagingPath, 'w');
      await handle.close();
      return { driver: 'filesystem', tempKey, size: 0 };
    },

    async appendUpload(state: UploadState, body: Readable): Promise<FilesystemUploadState> {
      const upload = parseUploadState(state);
      const stagingPath = pathOfKey(upload.tempKey);
      await assertStagingFile(stagingPath, upload);

      // A failed earlier append may have left bytes past state.size: cut them
      // off, so that the old state stays valid for a retry.
      await truncate(stagingPath, upload.size);
      await pipeline(body, createWriteStream(stagingPath, { flags: 'r+', start: upload.size, flush: true }));

      const { size } = await stat(stagingPath);
      return { ...upload, size };
    },

    async readUpload(state: UploadState): Promise<Readable> {
      const upload = parseUploadState(state);
      const stagingPath = pathOfKey(upload.tempKey);

      const handle = await openForReading(stagingPath, upload.tempKey);
      const { size } = await handle.stat();
      if (size < upload.size) {
        await handle.close();
        throw new Error(`upload staging file ${upload.tempKey} is truncated: ${size} bytes, but the upload state counts ${upload.size}`);
      }
      if (upload.size === 0) {
        await handle.close();
        return Readable.from([]);
      }
      // Bytes past state.size come from a failed append and are not part of the upload.
      return handle.createReadStream({ start: 0, end: upload.size - 1 });
    },

    async commitUpload(state: UploadState, finalKey: string): Promise<void> {
      const upload = parseUploadState(state);
      const stagingPath = pathOfKey(upload.tempKey);
      const finalPath = pathOfKey(finalKey);

      // Checked before the staging file, so a commit repeated after a crash
      // that happened between the rename and the metadata commit succeeds.
      if (await isFile(finalPath)) {
        // Final keys are content-addressed, so the existing file contains the same bytes.
        await removeIfExists(stagingPath);
        await pruneEmptyDirectories(upload.tempKey);
        return;
      }
      await assertStagingFile(stagingPath, upload);

      await truncate(stagingPath, upload.size);
      const handle = await open(stagingPath, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await moveIntoPlace(stagingPath, finalPath);
      await pruneEmptyDirectories(upload.tempKey);
    },

    async abortUpload(state: UploadState): Promise<void> {
      const upload = parseUploadState(state);
      await removeIfExists(pathOfKey(upload.tempKey));
      await pruneEmptyDirectories(upload.tempKey);
    },
  };
}

/** Rejects keys that are not relative paths of non-empty segments, or that point into TEMP_DIR. */
function assertValidKey(key: string): void {
  const segments = key.split('/');
  const invalid =
    key === '' ||
    key.includes('\0') ||
    key.includes('\\') ||
    path.isAbsolute(key) ||
    segments.some((segment) => segment === '' || segment === '.' || segment === '..') ||
    segments[0] === TEMP_DIR;
  if (invalid) {
    throw new Error(
      `invalid storage key ${JSON.stringify(key)}: expected a relative path of '/'-separated segments without '.', '..' or empty segments`,
    );
  }
}

/** Rejects list prefixes that could reach outside the root. An empty prefix lists every key. */
function assertValidPrefix(prefix: string): void {
  const segments = prefix.split('/');
  const invalid =
    prefix.includes('\0') ||
    prefix.includes('\\') ||
    path.isAbsolute(prefix) ||
    segments.some((segment) => segment === '.' || segment === '..');
  if (invalid) {
    throw new Error(`invalid storage key prefix ${JSON.stringify(prefix)}: expected a relative path without '.' or '..' segments`);
  }
}

function assertValidRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start) {
    throw new RangeError(`invalid byte range ${range.start}-${range.end}: expected integers with 0 <= start <= end`);
  }
}

function parseUploadState(state: UploadState): FilesystemUploadState {
  const { driver, tempKey, size } = state;
  if (driver !== 'filesystem' || typeof tempKey !== 'string' || !Number.isSafeInteger(size) || size < 0) {
    throw new Error('invalid upload state for the filesystem driver: expected driver "filesystem", a tempKey and a size');
  }
  return { driver, tempKey, size };
}

/** Checks that the staging file exists and contains at least the bytes that the state counts. */
async function assertStagingFile(stagingPath: string, upload: FilesystemUploadState): Promise<void> {
  let size: number;
  try {
    ({ size } = await stat(stagingPath));
  } catch (error) {
    if (hasCode(error, 'ENOENT', 'ENOTDIR')) throw new StorageNotFoundError(upload.tempKey);
    throw error;
  }

  if (size < upload.size) {
    throw new Error(`upload staging file ${upload.tempKey} is truncated: ${size} bytes, but the upload state counts ${upload.size}`);
  }
}

async function openForReading(filePath: string, key: string) {
  let handle;
  try {
    handle = await open(filePath, 'r');
  } catch (error) {
    if (hasCode(error, 'ENOENT', 'ENOTDIR')) throw new StorageNotFoundError(key);
    throw error;
  }

  const info = await handle.stat();
  if (!info.isFile()) {
    await handle.close();
    throw new StorageNotFoundError(key);
  }
  return handle;
}

async function isFile(filePath: string): Promise<boolean> {
  try {
    return (await stat(filePath)).isFile();
  } catch (error) {
    if (hasCode(error, 'ENOENT', 'ENOTDIR')) return false;
    throw error;
  }
}

async function removeIfExists(filePath: string): Promise<void> {
  try {
    await unlink(filePath);
  } catch (error) {
    if (!hasCode(error, 'ENOENT', 'ENOTDIR')) throw error;
  }
}

/** Removes a temporary file after a failure, logging instead of throwing so the first error stays visible. */
async function removeQuietly(filePath: string, logger: Logger): Promise<void> {
  try {
    await removeIfExists(filePath);
  } catch (error) {
    logger.warn({ err: error, path: filePath }, 'failed to remove temporary file');
  }
}

/** Fsyncs a directory so that a rename into it survives a crash. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function hasCode(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && 'code' in error && typeof error.code === 'string' && codes.includes(error.code);
}
