import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { RegistryClient } from '../helpers/registry-client.js';

describe('GET /v2/', () => {
  let server: TestServer;
  let client: RegistryClient;

  before(async () => {
    server = await startTestServer();
    client = new RegistryClient(server.url, server.admin);
  });
  after(() => server.close());

  test('returns 200', async () => {
    const response = await client.http.get('/v2/');
    assert.equal(response.status, 200);
  });

  test('sends Docker-Distribution-API-Version registry/2.0', async () => {
    const response = await client.http.get('/v2/');
    assert.equal(response.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  test('returns 200 without the trailing slash', async () => {
    const response = await client.http.get('/v2');
    assert.equal(response.status, 200);
  });

  test('returns 200 on HEAD', async () => {
    const response = await client.http.head('/v2/');
    assert.equal(response.status, 200);
  });

  test('sends the API version header on errors too', async () => {
    const response = await client.http.get('/v2/UPPER/tags/list');
    assert.equal(response.headers['docker-distribution-api-version'], 'registry/2.0');
  });
});
