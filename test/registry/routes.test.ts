import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRegistryError } from '../../src/errors.js';
import { checkMethod, matchRoute, type MatchedRoute } from '../../src/registry/routes.js';

const DIGEST = `sha256:${'c'.repeat(64)}`;
const SESSION = '5b4a3f0e-1111-4222-8333-944455556666';

describe('matchRoute', () => {
  const CASES: Array<[string, MatchedRoute | null]> = [
    ['/', { kind: 'base', name: '', reference: '' }],
    ['', { kind: 'base', name: '', reference: '' }],
    ['/_catalog', { kind: 'catalog', name: '', reference: '' }],
    ['/app/tags/list', { kind: 'tags', name: 'app', reference: '' }],
    ['/library/app/manifests/latest', { kind: 'manifest', name: 'library/app', reference: 'latest' }],
    [`/a/b/c/d/manifests/${DIGEST}`, { kind: 'manifest', name: 'a/b/c/d', reference: DIGEST }],
    ['/app/blobs/uploads/', { kind: 'uploadStart', name: 'app', reference: '' }],
    ['/app/blobs/uploads', { kind: 'uploadStart', name: 'app', reference: '' }],
    [`/app/blobs/uploads/${SESSION}`, { kind: 'upload', name: 'app', reference: SESSION }],
    [`/app/blobs/${DIGEST}`, { kind: 'blob', name: 'app', reference: DIGEST }],
    [`/app/referrers/${DIGEST}`, { kind: 'referrers', name: 'app', reference: DIGEST }],
    ['/team/manifests/manifests/latest', { kind: 'manifest', name: 'team/manifests', reference: 'latest' }],
    ['/team/blobs/uploads/tags/list', { kind: 'tags', name: 'team/blobs/uploads', reference: '' }],
    ['/app', null],
    ['/app/tags', null],
    ['/app/tags/list/extra', null],
    ['/app/manifests/', null],
    ['/app/blobs/uploads/a/b', null],
    ['/_catalog/extra', null],
  ];

  for (const [path, expected] of CASES) {
    test(`matches ${JSON.stringify(path)} as ${expected?.kind ?? 'no endpoint'}`, () => {
      assert.deepEqual(matchRoute(path), expected);
    });
  }

  const INVALID_NAMES = ['/App/tags/list', '/a/../b/tags/list', '/app//tags/list', '/my%2Fapp/tags/list', `/${'a'.repeat(256)}/manifests/latest`];

  for (const path of INVALID_NAMES) {
    test(`throws NAME_INVALID for ${JSON.stringify(path.length > 60 ? `${path.slice(0, 20)}…` : path)}`, () => {
      assert.throws(() => matchRoute(path), (error: unknown) => isRegistryError(error, 'NAME_INVALID'));
    });
  }
});

describe('checkMethod', () => {
  const ALLOWED: Array<[string, string]> = [
    ['/', 'GET'],
    ['/', 'HEAD'],
    ['/_catalog', 'GET'],
    ['/app/tags/list', 'HEAD'],
    ['/app/manifests/latest', 'PUT'],
    ['/app/manifests/latest', 'DELETE'],
    ['/app/blobs/uploads/', 'POST'],
    [`/app/blobs/uploads/${SESSION}`, 'PATCH'],
    [`/app/blobs/uploads/${SESSION}`, 'PUT'],
    [`/app/blobs/uploads/${SESSION}`, 'GET'],
    [`/app/blobs/uploads/${SESSION}`, 'DELETE'],
    [`/app/blobs/${DIGEST}`, 'DELETE'],
    [`/app/referrers/${DIGEST}`, 'GET'],
  ];
  const REFUSED: Array<[string, string]> = [
    ['/', 'POST'],
    ['/_catalog', 'DELETE'],
    ['/app/tags/list', 'POST'],
    ['/app/manifests/latest', 'PATCH'],
    ['/app/manifests/latest', 'POST'],
    ['/app/blobs/uploads/', 'GET'],
    [`/app/blobs/uploads/${SESSION}`, 'POST'],
    [`/app/blobs/${DIGEST}`, 'PUT'],
    [`/app/referrers/${DIGEST}`, 'DELETE'],
  ];

  for (const [path, method] of ALLOWED) {
    test(`allows ${method} ${path.slice(0, 40)}`, () => {
      assert.doesNotThrow(() => checkMethod(matchRoute(path) as MatchedRoute, method));
    });
  }

  for (const [path, method] of REFUSED) {
    test(`throws 405 UNSUPPORTED for ${method} ${path.slice(0, 40)}`, () => {
      assert.throws(() => checkMethod(matchRoute(path) as MatchedRoute, method), (error: unknown) => isRegistryError(error, 'UNSUPPORTED') && error.httpStatus === 405);
    });
  }
});
