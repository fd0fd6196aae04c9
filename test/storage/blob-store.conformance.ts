import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test, type TestContext } from 'node:test';

import { StorageNotFoundError, type BlobStore, type UploadState } from '../../src/storage/blob-store.js';
import { blobKey, uploadKey } from '../../src/storage/keys.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const CHUNK_SIZE = 64 * KIB;
// Larger than MAX_RSS_GROWTH, so that a driver that buffers the whole object fails the memory tests.
const LARGE_OBJECT_SIZE = 256 * MIB;
const MAX_RSS_GROWTH = 100 * MIB;

/** A store under test and the function that removes everything it created. */
export interface BlobStoreFixture {
  store: BlobStore;
  cleanup(): Promise<void>;
}

/**
 * Defines the tests that every BlobStore driver must pass. `makeStore` is
 * called once for the whole suite and must return an empty store.
 *
 * Upload sizes of 1 B, 3 MiB, 7 MiB and 11 MiB make the S3 driver (8 MiB
 * parts by default) keep tails, carry them into the next part and upload
 * several parts.
 */
export function describeBlobStoreConformance(name: string, makeStore: () => Promise<BlobStoreFixture>): void {
  describe(`${name} blob store`, () => {
    let fixture: BlobStoreFixture | undefined;
    const store = (): BlobStore => {
      if (!fixture) throw new Error('the store fixture was not created');
      return fixture.store;
    };
    const runId = randomUUID();
    const objectKey = (suffix: string): string => `conformance/${runId}/${suffix}`;

    before(async () => {
      fixture = await makeStore();
    });

    after(async () => {
      await fixture?.cleanup();
    });

    describe('objects', () => {
      test('write returns the object size', async () => {
        const data = randomBytes(3 * KIB + 17);

        const info = await store().write(objectKey('write-size'), bodyOf(data));

        assert.equal(info.size, data.length);
      });

      test('read returns the written bytes', async () => {
        const key = objectKey('read-back');
        const data = randomBytes(300 * KIB + 5);
        await store().write(key, bodyOf(data));

        const read = await readAll(await store().read(key));

        assert.ok(read.equals(data), 'bytes read differ from bytes written');
      });

      test('stat returns the size of an object', async () => {
        const key = objectKey('stat-size');
        await store().write(key, bodyOf(randomBytes(1234)));

        const info = await store().stat(key);

        assert.deepEqual(info, { size: 1234 });
      });

      test('stat returns null for a missing key', async () => {
        assert.equal(await store().stat(objectKey('missing')), null);
      });

      test('read rejects a missing key with StorageNotFoundError', async () => {
        await assert.rejects(store().read(objectKey('missing')), StorageNotFoundError);
      });

      test('write of an empty stream stores an empty object', async () => {
        const key = objectKey('empty');

        const info = await store().write(key, bodyOf(Buffer.alloc(0)));

        assert.equal(info.size, 0);
        assert.deepEqual(await store().stat(key), { size: 0 });
        assert.equal((await readAll(await store().read(key))).length, 0);
      });

      test('write replaces an existing object', async () => {
        const key = objectKey('replace');
        const replacement = randomBytes(2 * KIB);
        await store().write(key, bodyOf(randomBytes(5 * KIB)));

        await store().write(key, bodyOf(replacement));

        assert.ok((await readAll(await store().read(key))).equals(replacement), 'the object still holds the first bytes');
      });

      test('write rejects a failing body and stores nothing', async () => {
        const key = objectKey('failed-write');

        await assert.rejects(store().write(key, failingBody(randomBytes(MIB), 300 * KIB)), /simulated body failure/);

        assert.equal(await store().stat(key), null);
      });

      describe('ranges', () => {
        const key = objectKey('range');
        const data = randomBytes(100 * KIB + 3);
        const cases = [
          { label: 'the first byte', start: 0, end: 0 },
          { label: 'a middle range', start: 4097, end: 70_001 },
          { label: 'the last byte', start: data.length - 1, end: data.length - 1 },
        ];

        before(async () => {
          await store().write(key, bodyOf(data));
        });

        for (const { label, start, end } of cases) {
          test(`read of ${label} returns that range`, async () => {
            const read = await readAll(await store().read(key, { start, end }));

            assert.ok(read.equals(data.subarray(start, end + 1)), `bytes ${start}-${end} differ`);
          });
        }
      });

      test('delete removes an object', async () => {
        const key = objectKey('delete');
        await store().write(key, bodyOf(randomBytes(10)));

        await store().delete(key);

        assert.equal(await store().stat(key), null);
      });

      test('delete of a missing key succeeds', async () => {
        await store().delete(objectKey('never-written'));
      });

      test('list returns the keys under a prefix', async () => {
        const keys = ['list/a/1', 'list/a/2', 'list/a/sub/3', 'list/b/1', 'list/ab'].map(objectKey);
        for (const key of keys) await store().write(key, bodyOf(randomBytes(8)));

        const listed = await listKeys(store(), objectKey('list/a/'));

        assert.deepEqual(listed, ['list/a/1', 'list/a/2', 'list/a/sub/3'].map(objectKey));
      });

      test('list matches a prefix that ends inside a key segment', async () => {
        for (const key of ['segment/alpha', 'segment/alpine/1', 'segment/beta'].map(objectKey)) {
          await store().write(key, bodyOf(randomBytes(8)));
        }

        const listed = await listKeys(store(), objectKey('segment/alp'));

        assert.deepEqual(listed, ['segment/alpha', 'segment/alpine/1'].map(objectKey));
      });

      test('list returns the last modification time', async () => {
        const key = objectKey('list-time/object');
        const before = Date.now();
        await store().write(key, bodyOf(randomBytes(8)));

        const entries = [];
        for await (const entry of store().list(objectKey('list-time/'))) entries.push(entry);

        assert.equal(entries.length, 1);
        assert.ok(entries[0]?.lastModified instanceof Date, 'lastModified is not a Date');
        // One minute of slack for clock differences between this process and the storage server.
        assert.ok(Math.abs(entries[0].lastModified.getTime() - before) < 60_000, `lastModified ${entries[0].lastModified.toISOString()} is not recent`);
      });

      test('list of an unused prefix returns no keys', async () => {
        assert.deepEqual(await listKeys(store(), objectKey('unused/')), []);
      });
    });

    describe('uploads', () => {
      test('commit after odd-sized appends stores the bytes sent', async () => {
        const sizes = [1, 3 * MIB, 7 * MIB, 11 * MIB];
        const hash = createHash('sha256');
        let state = await store().startUpload(uploadKey(randomUUID()));
        let expectedSize = 0;

        for (const size of sizes) {
          const data = randomBytes(size);
          hash.update(data);
          expectedSize += size;
          state = await store().appendUpload(state, bodyOf(data));
          assert.equal(state.size, expectedSize, `state size after appending ${size} bytes`);
        }
        const digest = hash.digest('hex');
        const finalKey = blobKey(`sha256:${digest}`);
        await store().commitUpload(state, finalKey);

        assert.deepEqual(await store().stat(finalKey), { size: expectedSize });
        assert.equal(await sha256Of(await store().read(finalKey)), digest);
      });

      test('commit removes the staged data', async () => {
        const sessionId = randomUUID();
        const { state, digest } = await uploadRandom(store(), sessionId, [MIB, 9 * MIB]);

        await store().commitUpload(state, blobKey(`sha256:${digest}`));

        assert.deepEqual(await listKeys(store(), sessionPrefix(sessionId)), []);
      });

      test('zero-length upload commits an empty object', async () => {
        const state = await store().startUpload(uploadKey(randomUUID()));
        const finalKey = blobKey(`sha256:${sha256Hex(Buffer.alloc(0))}`);

        await store().commitUpload(state, finalKey);

        assert.deepEqual(await store().stat(finalKey), { size: 0 });
        assert.equal((await readAll(await store().read(finalKey))).length, 0);
      });

      test('append of an empty body keeps the upload size', async () => {
        const { state } = await uploadRandom(store(), randomUUID(), [MIB + 3]);

        const next = await store().appendUpload(state, bodyOf(Buffer.alloc(0)));

        assert.equal(next.size, MIB + 3);
        assert.equal(await sha256Of(await store().readUpload(next)), await sha256Of(await store().readUpload(state)));
        await store().abortUpload(next);
      });

      test('commit to an existing final key keeps the existing object', async () => {
        const data = randomBytes(6 * MIB + 1);
        const digest = sha256Hex(data);
        const finalKey = blobKey(`sha256:${digest}`);
        await store().write(finalKey, bodyOf(data));
        const sessionId = randomUUID();
        const started = await store().startUpload(uploadKey(sessionId));
        const state = await store().appendUpload(started, bodyOf(data));

        await store().commitUpload(state, finalKey);

        assert.equal(await sha256Of(await store().read(finalKey)), digest);
        assert.deepEqual(await listKeys(store(), sessionPrefix(sessionId)), []);
      });

      test('append retried from old state stores the bytes', async () => {
        const first = randomBytes(3 * MIB);
        const second = randomBytes(10 * MIB);
        const started = await store().startUpload(uploadKey(randomUUID()));
        const oldState = await store().appendUpload(started, bodyOf(first));

        // The failing body sends more than one part's worth before it fails.
        await assert.rejects(store().appendUpload(oldState, failingBody(randomBytes(10 * MIB), 9 * MIB)), /simulated body failure/);
        const state = await store().appendUpload(oldState, bodyOf(second));
        const digest = sha256Hex(Buffer.concat([first, second]));
        const finalKey = blobKey(`sha256:${digest}`);
        await store().commitUpload(state, finalKey);

        assert.equal(state.size, first.length + second.length);
        assert.equal(await sha256Of(await store().read(finalKey)), digest);
      });

      test('old state stays readable after a failed append', async () => {
        const first = randomBytes(2 * MIB + 5);
        const started = await store().startUpload(uploadKey(randomUUID()));
        const oldState = await store().appendUpload(started, bodyOf(first));

        await assert.rejects(store().appendUpload(oldState, failingBody(randomBytes(12 * MIB), 9 * MIB)), /simulated body failure/);

        assert.equal(await sha256Of(await store().readUpload(oldState)), sha256Hex(first));
        await store().abortUpload(oldState);
      });

      test('readUpload returns the bytes uploaded so far', async () => {
        const { state, digest } = await uploadRandom(store(), randomUUID(), [1, 6 * MIB, 3 * MIB]);

        assert.equal(await sha256Of(await store().readUpload(state)), digest);
        await store().abortUpload(state);
      });

      test('readUpload of an empty upload returns no bytes', async () => {
        const state = await store().startUpload(uploadKey(randomUUID()));

        assert.equal((await readAll(await store().readUpload(state))).length, 0);
        await store().abortUpload(state);
      });

      test('append after readUpload continues the upload', async () => {
        const first = randomBytes(9 * MIB + 1);
        const second = randomBytes(8 * MIB);
        const started = await store().startUpload(uploadKey(randomUUID()));
        const afterFirst = await store().appendUpload(started, bodyOf(first));
        await sha256Of(await store().readUpload(afterFirst));

        const state = await store().appendUpload(afterFirst, bodyOf(second));
        const digest = sha256Hex(Buffer.concat([first, second]));
        const finalKey = blobKey(`sha256:${digest}`);
        await store().commitUpload(state, finalKey);

        assert.equal(state.size, first.length + second.length);
        assert.equal(await sha256Of(await store().read(finalKey)), digest);
      });

      test('commit after readUpload stores the same bytes', async () => {
        const { state, digest } = await uploadRandom(store(), randomUUID(), [5 * MIB, 5 * MIB]);
        await sha256Of(await store().readUpload(state));
        const finalKey = blobKey(`sha256:${digest}`);

        await store().commitUpload(state, finalKey);

        assert.equal(await sha256Of(await store().read(finalKey)), digest);
      });

      test('abort removes the staged data', async () => {
        const sessionId = randomUUID();
        const { state } = await uploadRandom(store(), sessionId, [3 * MIB, 7 * MIB]);

        await store().abortUpload(state);

        assert.deepEqual(await listKeys(store(), sessionPrefix(sessionId)), []);
      });

      test('abort after readUpload removes the staged data', async () => {
        const sessionId = randomUUID();
        const { state } = await uploadRandom(store(), sessionId, [9 * MIB]);
        await sha256Of(await store().readUpload(state));

        await store().abortUpload(state);

        assert.deepEqual(await listKeys(store(), sessionPrefix(sessionId)), []);
      });

      test('abort of an aborted upload succeeds', async () => {
        const { state } = await uploadRandom(store(), randomUUID(), [MIB]);
        await store().abortUpload(state);

        await store().abortUpload(state);
      });

      test('append to an aborted upload rejects with StorageNotFoundError', async () => {
        const { state } = await uploadRandom(store(), randomUUID(), [MIB]);
        await store().abortUpload(state);

        await assert.rejects(store().appendUpload(state, bodyOf(randomBytes(KIB))), StorageNotFoundError);
      });
    });

    describe('memory', () => {
      test('write and read of 256 MiB use bounded memory', async (t) => {
        const key = objectKey('large/write');
        const body = generatedBody(LARGE_OBJECT_SIZE);

        const { result: readDigest, growth } = await measureRssGrowth(t, async () => {
          const info = await store().write(key, body.stream);
          assert.equal(info.size, LARGE_OBJECT_SIZE);
          return sha256Of(await store().read(key));
        });

        assert.equal(readDigest, body.sha256());
        assert.ok(growth < MAX_RSS_GROWTH, `RSS grew by ${formatMiB(growth)}`);
        await store().delete(key);
      });

      test('upload and commit of 256 MiB use bounded memory', async (t) => {
        const body = generatedBody(LARGE_OBJECT_SIZE);

        const { result: readDigest, growth } = await measureRssGrowth(t, async () => {
          const started = await store().startUpload(uploadKey(randomUUID()));
          const state = await store().appendUpload(started, body.stream);
          const finalKey = blobKey(`sha256:${body.sha256()}`);
          await store().commitUpload(state, finalKey);
          return sha256Of(await store().read(finalKey));
        });

        assert.equal(readDigest, body.sha256());
        assert.ok(growth < MAX_RSS_GROWTH, `RSS grew by ${formatMiB(growth)}`);
      });
    });
  });
}

/** Returns a stream of `data` in chunks of CHUNK_SIZE, as a network body arrives. */
function bodyOf(data: Buffer): Readable {
  return Readable.from(chunksOf(data));
}

function* chunksOf(data: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += CHUNK_SIZE) {
    yield data.subarray(offset, offset + CHUNK_SIZE);
  }
}

/** Returns a stream that sends the first `failAfter` bytes of `data` and then fails, as a dropped client connection does. */
function failingBody(data: Buffer, failAfter: number): Readable {
  return Readable.from(
    (async function* () {
      yield* chunksOf(data.subarray(0, failAfter));
      throw new Error('simulated body failure');
    })(),
  );
}

/** Returns a stream of `size` random bytes made while it is read, and their SHA-256 once it ended. */
function generatedBody(size: number): { stream: Readable; sha256(): string } {
  const hash = createHash('sha256');
  let digest: string | undefined;

  const stream = Readable.from(
    (function* () {
      for (let remaining = size; remaining > 0; remaining -= CHUNK_SIZE) {
        const chunk = randomBytes(Math.min(CHUNK_SIZE, remaining));
        hash.update(chunk);
        yield chunk;
      }
      digest = hash.digest('hex');
    })(),
  );

  return {
    stream,
    sha256(): string {
      if (digest === undefined) throw new Error('the generated body was not read to the end');
      return digest;
    },
  };
}

/** Starts an upload and appends random bytes in the given sizes. */
async function uploadRandom(store: BlobStore, sessionId: string, sizes: number[]): Promise<{ state: UploadState; digest: string }> {
  const hash = createHash('sha256');
  let state = await store.startUpload(uploadKey(sessionId));
  for (const size of sizes) {
    const data = randomBytes(size);
    hash.update(data);
    state = await store.appendUpload(state, bodyOf(data));
  }
  return { state, digest: hash.digest('hex') };
}

/** Returns the prefix of every key that an upload session stages. */
function sessionPrefix(sessionId: string): string {
  return uploadKey(sessionId).slice(0, uploadKey(sessionId).lastIndexOf('/') + 1);
}

async function listKeys(store: BlobStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const { key } of store.list(prefix)) keys.push(key);
  return keys.sort();
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Runs `action` while sampling the resident set size every 10 ms, and
 * reports the baseline and the peak as test diagnostics. A sampler misses
 * peaks shorter than its interval, so the growth is a lower bound.
 */
async function measureRssGrowth<T>(t: TestContext, action: () => Promise<T>): Promise<{ result: T; growth: number }> {
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const sample = (): void => {
    peak = Math.max(peak, process.memoryUsage.rss());
  };
  const timer = setInterval(sample, 10);

  try {
    const result = await action();
    sample();
    t.diagnostic(`RSS baseline ${formatMiB(baseline)}, peak ${formatMiB(peak)}, growth ${formatMiB(peak - baseline)}`);
    return { result, growth: peak - baseline };
  } finally {
    clearInterval(timer);
  }
}

function formatMiB(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}
