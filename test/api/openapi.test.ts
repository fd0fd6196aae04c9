import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface OpenApiDocument {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>>;
}

const documentText = await readFile(new URL('../../openapi.yaml', import.meta.url), 'utf8');
const openapi = parse(documentText) as OpenApiDocument;
const ajv = new Ajv2020({ strict: false });

/** Returns the JSON schema of a documented response, failing the test when it is not documented. */
function responseSchema(path: string, method: string, status: number): object {
  const schema = openapi.paths[path]?.[method]?.responses[String(status)]?.content?.['application/json']?.schema;
  assert.ok(schema, `openapi.yaml documents no JSON body for ${method.toUpperCase()} ${path} ${status}`);
  return schema;
}

describe('openapi.yaml matches real responses', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  for (const path of ['/healthz', '/readyz']) {
    test(`GET ${path} body matches its schema`, async () => {
      const response = await fetch(`${server.url}${path}`);
      const body: unknown = await response.json();
      const validate = ajv.compile(responseSchema(path, 'get', response.status));
      assert.ok(validate(body), JSON.stringify(validate.errors));
    });
  }

  test('GET /readyz returns 503 when the database is gone', async () => {
    const second = await startTestServer({ shareWith: server });
    await second.db.destroy();
    const response = await fetch(`${second.url}/readyz`);
    const body: unknown = await response.json();
    assert.equal(response.status, 503);
    const validate = ajv.compile(responseSchema('/readyz', 'get', 503));
    assert.ok(validate(body), JSON.stringify(validate.errors));
    await second.close().catch(() => {});
  });
});
