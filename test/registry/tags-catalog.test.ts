import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { assertOciError, RegistryClient, uniqueRepository, type ManifestDocument } from '../helpers/registry-client.js';

let server: TestServer;
let client: RegistryClient;

before(async () => {
  server = await startTestServer();
  client = new RegistryClient(server.url, server.admin);
});
after(() => server.close());

/** Pushes one image and tags it with every name, in the order given. */
async function tagRepository(repository: string, tags: string[]): Promise<ManifestDocument> {
  const image = await client.pushImage(repository);
  for (const tag of tags) await client.pushManifest(repository, tag, image);
  return image;
}

/** Inserts `count` tags named bulk-0000… on one manifest, straight into the database. */
async function insertBulkTags(repository: string, count: number): Promise<void> {
  const image = await client.pushImage(repository);
  const manifest: { id: number; repository_id: number } = await server.db('manifests').where({ digest: image.digest }).first('id', 'repository_id');
  const rows = Array.from({ length: count }, (_, index) => ({ repository_id: manifest.repository_id, name: `bulk-${String(index).padStart(4, '0')}`, manifest_id: manifest.id }));
  await server.db.batchInsert('tags', rows, 500);
}

describe('tags list', () => {
  const TAGS = ['b', 'a', 'latest', 'C', '10', '9', '_x', 'v1.0'];
  const SORTED = ['10', '9', 'C', '_x', 'a', 'b', 'latest', 'v1.0'];
  let repository: string;

  before(async () => {
    repository = uniqueRepository('tags');
    await tagRepository(repository, TAGS);
  });

  test('returns 200 with the repository name', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list`);
    assert.equal(response.status, 200);
    assert.equal(response.body.name, repository);
  });

  test('lists tags in lexical order', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list`);
    assert.deepEqual(response.body.tags, SORTED);
  });

  test('returns the first n tags', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=3`);
    assert.deepEqual(response.body.tags, SORTED.slice(0, 3));
  });

  test('sends a Link to the next page', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=3`);
    assert.equal(response.headers.link, `</v2/${repository}/tags/list?n=3&last=C>; rel="next"`);
  });

  test('returns the tags after last', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=3&last=C`);
    assert.deepEqual(response.body.tags, ['_x', 'a', 'b']);
  });

  test('returns every tag when following Link to the end', async () => {
    const seen: string[] = [];
    let path: string | null = `/v2/${repository}/tags/list?n=3`;
    for (let page = 0; path !== null && page < 10; page++) {
      const response = await client.http.get(path);
      seen.push(...(response.body.tags as string[]));
      const link = response.headers.link as string | undefined;
      path = link ? (/^<([^>]+)>/.exec(link)?.[1] ?? null) : null;
    }
    assert.deepEqual(seen, SORTED);
  });

  test('sends no Link on the last page', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=3&last=b`);
    assert.equal(response.headers.link, undefined);
  });

  test('sends no Link when n covers every tag exactly', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=${SORTED.length}`);
    assert.equal(response.headers.link, undefined);
  });

  test('returns the tags after last without n', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?last=b`);
    assert.deepEqual(response.body.tags, ['latest', 'v1.0']);
  });

  test('returns an empty list for n=0', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=0`);
    assert.deepEqual(response.body, { name: repository, tags: [] });
  });

  test('returns 400 PAGINATION_NUMBER_INVALID for a negative n', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=-1`);
    assertOciError(response, 400, 'PAGINATION_NUMBER_INVALID');
  });

  test('returns 400 PAGINATION_NUMBER_INVALID for a garbage n', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=ten`);
    assertOciError(response, 400, 'PAGINATION_NUMBER_INVALID');
  });

  test('returns 400 PAGINATION_NUMBER_INVALID for a fractional n', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=1.5`);
    assertOciError(response, 400, 'PAGINATION_NUMBER_INVALID');
  });

  test('returns 400 PAGINATION_NUMBER_INVALID for a repeated n', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=1&n=2`);
    assertOciError(response, 400, 'PAGINATION_NUMBER_INVALID');
  });

  test('returns 400 PAGINATION_NUMBER_INVALID for a last with a NUL character', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?last=%00`);
    assertOciError(response, 400, 'PAGINATION_NUMBER_INVALID');
  });

  test('returns 404 NAME_UNKNOWN for an unknown repository', async () => {
    const response = await client.http.get(`/v2/${uniqueRepository('nowhere')}/tags/list`);
    assertOciError(response, 404, 'NAME_UNKNOWN');
  });

  test('returns an empty list for a repository without tags', async () => {
    const empty = uniqueRepository('untagged');
    await client.pushImage(empty);
    const response = await client.http.get(`/v2/${empty}/tags/list`);
    assert.deepEqual(response.body, { name: empty, tags: [] });
  });

  test('lists the tags of a nested repository name', async () => {
    const nested = `nested/a/b/c/${uniqueRepository('d')}`;
    await tagRepository(nested, ['one']);
    const response = await client.http.get(`/v2/${nested}/tags/list`);
    assert.deepEqual(response.body, { name: nested, tags: ['one'] });
  });
});

describe('tags list page size cap', () => {
  let repository: string;

  before(async () => {
    repository = uniqueRepository('tags-cap');
    await insertBulkTags(repository, 1005);
  });

  test('returns at most 1000 tags for n=1000000', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=1000000`);
    assert.equal(response.body.tags.length, 1000);
  });

  test('sends the capped n in the Link', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=1000000`);
    assert.equal(response.headers.link, `</v2/${repository}/tags/list?n=1000&last=bulk-0999>; rel="next"`);
  });

  test('returns at most 1000 tags without n', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list`);
    assert.equal(response.body.tags.length, 1000);
  });

  test('returns the rest on the next page', async () => {
    const response = await client.http.get(`/v2/${repository}/tags/list?n=1000&last=bulk-0999`);
    assert.deepEqual(response.body.tags, ['bulk-1000', 'bulk-1001', 'bulk-1002', 'bulk-1003', 'bulk-1004']);
  });
});

// Every other repository in this file sorts after "catalog/", so the first
// catalog entries are the ones created here.
describe('catalog', () => {
  const NAMES = ['catalog/c', 'catalog/a', 'catalog/b-2', 'catalog/b'];
  const SORTED = ['catalog/a', 'catalog/b', 'catalog/b-2', 'catalog/c'];

  before(async () => {
    for (const name of NAMES) await client.startUpload(name);
  });

  test('returns 200 for GET /v2/_catalog', async () => {
    const response = await client.http.get('/v2/_catalog');
    assert.equal(response.status, 200);
  });

  test('lists repositories in lexical order', async () => {
    const response = await client.http.get(`/v2/_catalog?n=${SORTED.length}`);
    assert.deepEqual(response.body, { repositories: SORTED });
  });

  test('returns the first n repositories', async () => {
    const response = await client.http.get('/v2/_catalog?n=2');
    assert.deepEqual(response.body.repositories, SORTED.slice(0, 2));
  });

  test('sends a Link to the next page', async () => {
    const response = await client.http.get('/v2/_catalog?n=2');
    assert.equal(response.headers.link, '</v2/_catalog?n=2&last=catalog%2Fb>; rel="next"');
  });

  test('returns the repositories after last', async () => {
    const response = await client.http.get('/v2/_catalog?n=2&last=catalog%2Fb');
    assert.deepEqual(response.body.repositories, ['catalog/b-2', 'catalog/c']);
  });

  test('returns an empty list for n=0', async () => {
    const response = await client.http.get('/v2/_catalog?n=0');
    assert.deepEqual(response.body, { repositories: [] });
  });

  test('returns 400 PAGINATION_NUMBER_INVALID for a negative n', async () => {
    const response = await client.http.get('/v2/_catalog?n=-5');
    assertOciError(response, 400, 'PAGINATION_NUMBER_INVALID');
  });

  test('returns 400 PAGINATION_NUMBER_INVALID for a garbage n', async () => {
    const response = await client.http.get('/v2/_catalog?n=all');
    assertOciError(response, 400, 'PAGINATION_NUMBER_INVALID');
  });

  test('returns 400 PAGINATION_NUMBER_INVALID for a last with a NUL character', async () => {
    const response = await client.http.get('/v2/_catalog?last=catalog%00');
    assertOciError(response, 400, 'PAGINATION_NUMBER_INVALID');
  });

  test('returns at most 1000 repositories for n=1000000', async () => {
    const rows = Array.from({ length: 1001 }, (_, index) => ({ name: `zz-bulk/r${String(index).padStart(4, '0')}` }));
    await server.db.batchInsert('repositories', rows, 500);
    const response = await client.http.get('/v2/_catalog?n=1000000');
    assert.equal(response.body.repositories.length, 1000);
  });
});
