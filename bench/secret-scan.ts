/**
 * Compares scanLayer throughput with plain gunzip throughput on the same gzip layer, and checks
 * that the scan runs at least at half the speed of decompression alone.
 *
 * Usage: node --import tsx bench/secret-scan.ts [layer.tar.gz | size in MiB, default 1024]
 * With a size, it first writes a generated layer (40% text, 60% binary, gzip level 6) to a
 * temporary file, then reads that file for both measurements.
 */
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { DEFAULT_SCAN_LIMITS, scanLayer } from '../src/scan/engine/index.js';
import { generateLayer } from '../test/scan/engine/layer-generator.js';

const MIB = 1024 * 1024;
const argument = process.argv[2] ?? '1024';
const givenPath = existsSync(argument) ? argument : null;
const tempDir = givenPath ? null : await mkdtemp(path.join(os.tmpdir(), 'secret-scan-bench-'));
const layerPath = givenPath ?? path.join(tempDir!, 'layer.tar.gz');

if (!givenPath) {
  const started = performance.now();
  await pipeline(generateLayer({ bytes: Number(argument) * MIB }), createGzip({ level: 6 }), createWriteStream(layerPath));
  console.log(`generated ${layerPath} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
const compressedBytes = (await stat(layerPath)).size;

async function gunzipOnly(): Promise<{ seconds: number; bytes: number }> {
  let bytes = 0;
  const started = performance.now();
  await pipeline(createReadStream(layerPath), createGunzip(), new Writable({ write(chunk: Buffer, _encoding, callback) { bytes += chunk.length; callback(); } }));
  return { seconds: (performance.now() - started) / 1000, bytes };
}

async function scan(): Promise<{ seconds: number; bytes: number; findings: number; peakRssMiB: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const started = performance.now();
  const result = await scanLayer(createReadStream(layerPath), 'application/vnd.oci.image.layer.v1.tar+gzip', 'sha256:bench', DEFAULT_SCAN_LIMITS);
  const seconds = (performance.now() - started) / 1000;
  clearInterval(timer);
  if (result.unscannable) throw new Error(`layer was not scanned: ${result.unscannable}`);
  return { seconds, bytes: result.expandedBytes, findings: result.findings.length, peakRssMiB: peak / MIB };
}

// The first pass warms the file cache and the JIT; the second is reported.
await gunzipOnly();
await scan();
const gunzip = await gunzipOnly();
const scanned = await scan();

const gunzipRate = gunzip.bytes / MIB / gunzip.seconds;
const scanRate = scanned.bytes / MIB / scanned.seconds;
console.log(`layer: ${(compressedBytes / MIB).toFixed(0)} MiB gzip, ${(gunzip.bytes / MIB).toFixed(0)} MiB expanded`);
console.log(`gunzip only: ${gunzip.seconds.toFixed(2)} s, ${gunzipRate.toFixed(0)} MiB/s`);
console.log(`scanLayer:   ${scanned.seconds.toFixed(2)} s, ${scanRate.toFixed(0)} MiB/s, ${scanned.findings} findings, peak RSS ${scanned.peakRssMiB.toFixed(0)} MiB`);
console.log(`ratio scan/gunzip: ${(scanRate / gunzipRate).toFixed(2)} (required: at least 0.50)`);

if (tempDir) await rm(tempDir, { recursive: true, force: true });
process.exitCode = scanRate >= 0.5 * gunzipRate ? 0 : 1;
