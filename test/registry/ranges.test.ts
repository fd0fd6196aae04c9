import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRegistryError } from '../../src/errors.js';
import { parseContentRange, parseRangeHeader, uploadRangeHeader, type RangeRequest } from '../../src/registry/ranges.js';

describe('parseContentRange', () => {
  const VALID: Array<[string, { start: number; end: number }]> = [
    ['0-4', { start: 0, end: 4 }],
    ['5-5', { start: 5, end: 5 }],
    [' 3-7 ', { start: 3, end: 7 }],
    ['bytes 0-4/10', { start: 0, end: 4 }],
    ['bytes 0-4/*', { start: 0, end: 4 }],
    ['bytes=5-9', { start: 5, end: 9 }],
    ['1048576-2097151', { start: 1048576, end: 2097151 }],
  ];
  const INVALID = ['4-0', 'abc', '-4', '0-', '1-2-3', '0-4/x', 'bytes 0-4/', 'items 0-4', '1234567890123456-1234567890123457'];

  test('returns null for an absent header', () => {
    assert.equal(parseContentRange(undefined), null);
  });

  test('returns null for an empty header', () => {
    assert.equal(parseContentRange(''), null);
  });

  for (const [header, range] of VALID) {
    test(`reads ${JSON.stringify(header)}`, () => {
      assert.deepEqual(parseContentRange(header), range);
    });
  }

  for (const header of INVALID) {
    test(`throws RANGE_INVALID for ${JSON.stringify(header)}`, () => {
      assert.throws(() => parseContentRange(header), (error: unknown) => isRegistryError(error, 'RANGE_INVALID'));
    });
  }
});

describe('parseRangeHeader', () => {
  const CASES: Array<[string | undefined, number, RangeRequest]> = [
    [undefined, 10, { kind: 'none' }],
    ['bytes=0-3', 10, { kind: 'range', range: { start: 0, end: 3 } }],
    ['bytes=-3', 10, { kind: 'range', range: { start: 7, end: 9 } }],
    ['bytes=5-', 10, { kind: 'range', range: { start: 5, end: 9 } }],
    ['bytes=9-9', 10, { kind: 'range', range: { start: 9, end: 9 } }],
    ['bytes=0-100', 10, { kind: 'range', range: { start: 0, end: 9 } }],
    ['bytes=-20', 10, { kind: 'range', range: { start: 0, end: 9 } }],
    ['bytes=10-', 10, { kind: 'unsatisfiable' }],
    ['bytes=10-20', 10, { kind: 'unsatisfiable' }],
    ['bytes=3-2', 10, { kind: 'unsatisfiable' }],
    ['bytes=-0', 10, { kind: 'unsatisfiable' }],
    ['bytes=0-', 0, { kind: 'unsatisfiable' }],
    ['bytes=-5', 0, { kind: 'unsatisfiable' }],
    ['bytes=0-1,3-4', 10, { kind: 'none' }],
    ['items=0-1', 10, { kind: 'none' }],
    ['bytes=-', 10, { kind: 'none' }],
    ['bytes=a-b', 10, { kind: 'none' }],
  ];

  for (const [header, size, expected] of CASES) {
    test(`reads ${JSON.stringify(header)} of ${size} bytes as ${expected.kind}`, () => {
      assert.deepEqual(parseRangeHeader(header, size), expected);
    });
  }
});

describe('uploadRangeHeader', () => {
  const CASES: Array<[number, string]> = [
    [0, '0-0'],
    [1, '0-0'],
    [10, '0-9'],
    [5 * 1024 * 1024, '0-5242879'],
  ];

  for (const [size, header] of CASES) {
    test(`formats ${size} bytes as ${header}`, () => {
      assert.equal(uploadRangeHeader(size), header);
    });
  }
});
