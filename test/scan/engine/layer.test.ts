import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { createGzip, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { scanLayer } from '../../../src/scan/engine/index.js';
import * as fixtures from './helpers.js';

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const TAR = 'application/vnd.oci.image.layer.v1.tar';
const LIMITS = { maxExpandedBytes: 1 << 30, maxEntries: 1000, maxFileBytes: 1 << 20 };

async function keyLayer(): Promise<Buffer> {
  return fixtures.buildTar([
    { name: 'root/', type: 'directory' },
    { name: './root/.ssh/id_rsa', content: fixtures.rsaPkcs1Pem() },
    { name: 'bin/sh', type: 'symlink' },
  ]);
}

const hasZstd = spawnSync('zstd', ['--version']).status === 0;

describe('scanLayer', () => {
  it('scans an uncompressed tar', async () => {
    const result = await scanLayer(fixtures.streamOf(await keyLayer()), TAR, 'sha256:1');
    assert.equal(result.unscannable, undefined);
    assert.deepEqual(result.findings.map((f) => [f.layer, f.path, f.detector]), [['sha256:1', 'root/.ssh/id_rsa', 'private-key-rsa']]);
    assert.equal(result.entries, 3);
  });

  it('scans a gzip tar', async () => {
    const result = await scanLayer(fixtures.streamOf(gzipSync(await keyLayer())), 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'sha256:2');
    assert.deepEqual(result.findings.map((f) => f.detector), ['private-key-rsa']);
  });

  it('trusts gzip bytes over a plain tar media type', async () => {
    const result = await scanLayer(fixtures.streamOf(gzipSync(await keyLayer())), TAR, 'sha256:3');
    assert.deepEqual(result.findings.map((f) => f.detector), ['private-key-rsa']);
  });

  it('scans a zstd tar', { skip: hasZstd ? false : 'the zstd command is not installed' }, async () => {
    const compressed = spawnSync('zstd', ['-c', '-q', '-3'], { input: await keyLayer() }).stdout;
    const result = await scanLayer(fixtures.streamOf(compressed, 100), ZSTD, 'sha256:4');
    assert.equal(result.unscannable, undefined);
    assert.deepEqual(result.findings.map((f) => f.detector), ['private-key-rsa']);
  });

  it('scans a multi-frame zstd tar with checksums', { skip: hasZstd ? false : 'the zstd command is not installed' }, async () => {
    const tar = await keyLayer();
    const half = tar.length >> 1;
    const frames = [tar.subarray(0, half), tar.subarray(half)].map((part) => spawnSync('zstd', ['-c', '-q', '--check'], { input: part }).stdout);
    const result = await scanLayer(fixtures.streamOf(Buffer.concat(frames), 333), 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd', 'sha256:5');
    assert.deepEqual(result.findings.map((f) => f.detector), ['private-key-rsa']);
  });

  it('yields to timers during zstd expansion', { skip: hasZstd ? false : 'the zstd command is not installed' }, async () => {
    const tarball = await fixtures.buildTar([{ name: 'filler.txt', content: Buffer.alloc(32 * 1024 * 1024, 'A') }]);
    const compressed = spawnSync('zstd', ['-c', '-q', '-19'], { input: tarball, maxBuffer: 64 * 1024 * 1024 }).stdout;
    assert.ok(compressed.length < 64 * 1024);
    let timerRan = false;
    const timer = setTimeout(() => (timerRan = true), 0);
    // The whole layer is one buffered chunk, as a small blob read from storage is.
    const result = await scanLayer(Readable.from([compressed]), ZSTD, 'sha256:zstd-bomb');
    clearTimeout(timer);
    assert.equal(result.unscannable, undefined);
    assert.ok(result.expandedBytes >= 32 * 1024 * 1024);
    assert.ok(timerRan, 'no timer ran until the whole layer was scanned');
  });

  it('rejects a zstd frame with a huge window', async () => {
    // Frame header: magic, descriptor 0 (window descriptor present), window descriptor with exponent 21 (2 GiB).
    const frame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3, 0x01, 0x00, 0x00]);
    const result = await scanLayer(fixtures.streamOf(frame), ZSTD, 'sha256:6');
    assert.match(result.unscannable ?? '', /window/);
  });

  it('keeps a finding in the layer whose file a later layer deletes', async () => {
    const lower = await scanLayer(fixtures.streamOf(await keyLayer()), TAR, 'sha256:lower');
    const upper = await scanLayer(fixtures.streamOf(await fixtures.buildTar([{ name: 'root/.ssh/.wh.id_rsa' }])), TAR, 'sha256:upper');
    assert.deepEqual(lower.findings.map((f) => f.path), ['root/.ssh/id_rsa']);
    assert.deepEqual(upper.findings, []);
    assert.equal(upper.entries, 1);
  });

  it('stops a decompression bomb at the expanded-bytes limit', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    assert.ok(bomb.length < 100 * 1024);
    const started = Date.now();
    const result = await scanLayer(fixtures.streamOf(bomb), GZIP, 'sha256:bomb', { ...LIMITS, maxExpandedBytes: 1024 * 1024 });
    assert.equal(result.unscannable, 'layer expands past 1 MiB');
    assert.ok(result.expandedBytes <= 1024 * 1024 + 64 * 1024);
    assert.ok(Date.now() - started < 2000);
  });

  it('stops at the entry limit', async () => {
    const tar = await fixtures.buildTar(Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, content: 'x' })));
    const result = await scanLayer(fixtures.streamOf(tar), TAR, 'sha256:many', { ...LIMITS, maxEntries: 10 });
    assert.equal(result.unscannable, 'layer has more than 10 entries');
  });

  it('scans only the first maxFileBytes of a file', async () => {
    const content = `${'filler line\n'.repeat(20000)}${fixtures.rsaPkcs1Pem()}`;
    const tar = await fixtures.buildTar([{ name: 'big.txt', content }]);
    const result = await scanLayer(fixtures.streamOf(tar), TAR, 'sha256:big', { ...LIMITS, maxFileBytes: 100 * 1024 });
    assert.deepEqual(result.findings, []);
    assert.equal(result.truncatedFiles, 1);
  });

  it('reports a non-tar layer as unscannable', async () => {
    const result = await scanLayer(fixtures.streamOf(Buffer.from('{"not": "a tar archive"}'.repeat(40))), TAR, 'sha256:json');
    assert.match(result.unscannable ?? '', /not a valid tar archive/);
  });

  it('reports corrupt gzip as unscannable', async () => {
    const gz = gzipSync(await keyLayer());
    gz.fill(0x55, 20, 200);
    const result = await scanLayer(fixtures.streamOf(gz), GZIP, 'sha256:corrupt');
    assert.match(result.unscannable ?? '', /not valid gzip data/);
  });

  it('reports xz as unscannable', async () => {
    const result = await scanLayer(fixtures.streamOf(Buffer.from('fd377a585a000004e6d6b446', 'hex')), TAR, 'sha256:xz');
    assert.match(result.unscannable ?? '', /xz/);
  });

  it('rethrows an input stream error', async () => {
    const input = new Readable({ read() { this.destroy(new Error('connection reset')); } });
    await assert.rejects(scanLayer(input, GZIP, 'sha256:err'), /connection reset/);
  });

  it('rejects with the abort reason', async () => {
    const controller = new AbortController();
    const pack = tar.pack();
    const sink = pack.entry({ name: 'endless.txt', size: 2 ** 40 });
    const line = Buffer.alloc(64 * 1024, 'line\n');
    const aborted = new Promise((resolve) => controller.signal.addEventListener('abort', () => resolve(undefined), { once: true }));
    const writing = (async () => {
      while (!controller.signal.aborted) {
        if (!sink.write(line)) await Promise.race([new Promise((resolve) => sink.once('drain', () => resolve(undefined))), aborted]);
      }
    })();
    setTimeout(() => controller.abort(new Error('scan cancelled')), 200);
    await assert.rejects(scanLayer(Readable.from(pack).pipe(createGzip({ level: 1 })), GZIP, 'sha256:abort', LIMITS, controller.signal), /scan cancelled/);
    await writing;
  });
});
