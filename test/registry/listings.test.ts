import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRegistryError } from '../../src/errors.js';
import { MAX_PAGE_SIZE, parsePageRequest, type PageRequest } from '../../src/registry/listings.js';

describe('parsePageRequest', () => {
  const VALID: Array<[unknown, unknown, PageRequest]> = [
    [undefined, undefined, { n: null, last: null }],
    ['0', undefined, { n: 0, last: null }],
    ['1', undefined, { n: 1, last: null }],
    ['50', 'v1.0', { n: 50, last: 'v1.0' }],
    ['1000', undefined, { n: 1000, last: null }],
    ['1001', undefined, { n: 1000, last: null }],
    ['1000000', undefined, { n: 1000, last: null }],
    ['999999999', undefined, { n: 1000, last: null }],
    ['007', undefined, { n: 7, last: null }],
    [undefined, 'library/app', { n: null, last: 'library/app' }],
    [undefined, '', { n: null, last: null }],
  ];
  const INVALID_N: unknown[] = ['-1', 'ten', '1.5', '', ' 5', '1e3', '0x10', '9999999999', ['1', '2'], 5];
  const INVALID_LAST: unknown[] = [['a', 'b'], 'tag\u0000', 7];

  test('caps the page size at 1000', () => {
    assert.equal(MAX_PAGE_SIZE, 1000);
  });

  for (const [n, last, expected] of VALID) {
    test(`reads n=${JSON.stringify(n)} last=${JSON.stringify(last)}`, () => {
      assert.deepEqual(parsePageRequest(n, last), expected);
    });
  }

  for (const n of INVALID_N) {
    test(`throws PAGINATION_NUMBER_INVALID for n=${JSON.stringify(n)}`, () => {
      assert.throws(() => parsePageRequest(n, undefined), (error: unknown) => isRegistryError(error, 'PAGINATION_NUMBER_INVALID'));
    });
  }

  for (const last of INVALID_LAST) {
    test(`throws PAGINATION_NUMBER_INVALID for last=${JSON.stringify(last)}`, () => {
      assert.throws(() => parsePageRequest(undefined, last), (error: unknown) => isRegistryError(error, 'PAGINATION_NUMBER_INVALID'));
    });
  }
});
