import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { RegistryClient } from '../helpers/registry-client.js';

let server: TestServer;
let client: RegistryClient;

before(async () => {
  server = await startTestServer();
  client = new RegistryClient(server.url, server.admin);
});

after(async () => {
  await server.close();
});

test('405 names the allowed methods in Allow', async () => {
  const response = await client.http.post('/v2/methods/app/tags/list');
  assert.equal(response.status, 405);
  assert.equal(response.headers.allow, 'GET, HEAD');
});

test('HEAD on an upload session returns 204', async () => {
  const started = await client.http.post('/v2/methods/app/blobs/uploads/');
  const location = new URL(started.headers.location as string).pathname;
  const response = await client.http.head(location);
  assert.equal(response.status, 204);
  assert.equal(response.headers['docker-upload-uuid'], started.headers['docker-upload-uuid']);
});
