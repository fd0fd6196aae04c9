import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createGzip } from 'node:zlib';
import { scanLayer } from '../../../src/scan/engine/index.js';
import { generateLayer } from './layer-generator.js';

const MIB = 1024 * 1024;
/** Size of the generated layer; SCAN_MEMORY_TEST_MIB overrides it (the benchmark runs 1 GiB). */
const LAYER_MIB = Number(process.env.SCAN_MEMORY_TEST_MIB ?? 512);
const RSS_GROWTH_LIMIT_MIB = 150;

describe('scanLayer memory', () => {
  it(`stays within ${RSS_GROWTH_LIMIT_MIB} MiB of RSS growth on a ${LAYER_MIB} MiB layer`, { timeout: 120_000 }, async () => {
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);

    const layer = generateLayer({ bytes: LAYER_MIB * MIB, seed: 7 }).pipe(createGzip({ level: 1 }));
    const result = await scanLayer(layer, 'application/vnd.oci.image.layer.v1.tar+gzip', 'sha256:memory');
    clearInterval(timer);

    assert.equal(result.unscannable, undefined);
    assert.ok(result.expandedBytes >= LAYER_MIB * MIB, `expanded only ${result.expandedBytes} bytes`);
    assert.ok(result.findings.length > 0, 'the generated keys were not found');
    const growthMiB = (peak - baseline) / MIB;
    assert.ok(growthMiB < RSS_GROWTH_LIMIT_MIB, `RSS grew by ${growthMiB.toFixed(0)} MiB`);
  });
});
