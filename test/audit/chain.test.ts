import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { canonicalJson, chainHash, contentHashOf, GENESIS_HASH, linkEvents } from '../../src/audit/chain.js';
import { emptyInput } from '../../src/audit/store.js';
import { checkEvent } from '../../src/audit/verify.js';

describe('canonical JSON', () => {
  test('sorts object keys', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: true, c: null } }), '{"a":{"c":null,"d":true},"b":1}');
  });

  test('keeps array order', () => {
    assert.equal(canonicalJson(['b', 'a']), '["b","a"]');
  });

  test('escapes strings as JSON does', () => {
    assert.equal(canonicalJson({ quote: 'a"b\n' }), '{"quote":"a\\"b\\n"}');
  });

  test('refuses non-finite numbers', () => {
    assert.throws(() => canonicalJson({ size: Number.NaN }), TypeError);
  });
});

describe('linking', () => {
  const time = new Date('2026-12-05T01:02:03.456Z');
  const inputs = [emptyInput('gateway.start', 'r1'), { ...emptyInput('manifest.pull', 'r1'), repository: 'team/app', digest: `sha256:${'a'.repeat(64)}` }];

  test('numbers events after the last one', () => {
    assert.deepEqual(linkEvents(inputs, 41, GENESIS_HASH, time).map((event) => event.seq), [42, 43]);
  });

  test('links the first event to the given hash', () => {
    assert.equal(linkEvents(inputs, 0, 'f'.repeat(64), time)[0]?.prevHash, 'f'.repeat(64));
  });

  test('links each later event to the one before', () => {
    const [first, second] = linkEvents(inputs, 0, GENESIS_HASH, time);
    assert.equal(second?.prevHash, first?.hash);
  });

  test('derives the hash from the previous hash and the content hash', () => {
    const [first] = linkEvents(inputs, 0, GENESIS_HASH, time);
    assert.equal(first?.hash, chainHash(GENESIS_HASH, contentHashOf(first!)));
  });

  test('a linked event passes the check', () => {
    const [first] = linkEvents(inputs, 0, GENESIS_HASH, time);
    assert.equal(checkEvent(first!, 1, GENESIS_HASH), null);
  });

  test('a changed field fails the content check', () => {
    const [, second] = linkEvents(inputs, 0, GENESIS_HASH, time);
    const edited = { ...second!, repository: 'team/other' };
    assert.equal(checkEvent(edited, 2, second!.prevHash)?.kind, 'content');
  });

  test('a changed time fails the content check', () => {
    const [first] = linkEvents(inputs, 0, GENESIS_HASH, time);
    assert.equal(checkEvent({ ...first!, occurredAt: new Date(time.getTime() + 1) }, 1, GENESIS_HASH)?.kind, 'content');
  });

  test('a gap is reported as missing at the first absent number', () => {
    const [, second] = linkEvents(inputs, 0, GENESIS_HASH, time);
    const problem = checkEvent(second!, 1, GENESIS_HASH);
    assert.deepEqual([problem?.kind, problem?.seq], ['missing', 1]);
  });

  test('a wrong previous hash fails the link check', () => {
    const [, second] = linkEvents(inputs, 0, GENESIS_HASH, time);
    assert.equal(checkEvent(second!, 2, GENESIS_HASH)?.kind, 'link');
  });
});
