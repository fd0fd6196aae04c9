import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FindingCollector } from '../../../src/scan/engine/redaction.js';
import { MAX_LINE_CHARS, TextScanner } from '../../../src/scan/engine/text-scanner.js';
import * as fixtures from './helpers.js';

/** Reads the part of the current line that the scanner keeps between chunks. */
function keptChars(scanner: TextScanner): number {
  return (scanner as unknown as { carry: string }).carry.length;
}

describe('TextScanner', () => {
  it('bounds the kept part of a long line', () => {
    const scanner = new TextScanner(new FindingCollector('sha256:long'), 'bundle.js', 'generic');
    // A zstd block decodes to up to 128 KiB, twice a scanned piece.
    const chunk = 'A'.repeat(128 * 1024);
    let maxKept = 0;
    for (let i = 0; i < 64; i++) {
      scanner.writeText(chunk);
      maxKept = Math.max(maxKept, keptChars(scanner));
    }
    assert.ok(maxKept <= MAX_LINE_CHARS, `kept ${maxKept} characters of one line`);
  });

  it('finds a token inside a long line', () => {
    const collector = new FindingCollector('sha256:long');
    const scanner = new TextScanner(collector, 'bundle.js', 'generic');
    const token = `ghp_${fixtures.randomToken(36)}`;
    const text = `${'x '.repeat(300 * 1024)}${token} ${'y '.repeat(300 * 1024)}`;
    for (let i = 0; i < text.length; i += 128 * 1024) scanner.writeText(text.slice(i, i + 128 * 1024));
    scanner.end();
    assert.deepEqual(collector.findings.map((f) => [f.detector, f.line]), [['github-token', 1]]);
  });
});
