import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await server.close();
});

async function post(path: string, body: string): Promise<{ status: number; code: unknown }> {
  const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { Authorization: server.adminAuthorization, 'Content-Type': 'application/json' }, body });
  const json = (await response.json()) as { error?: { code?: unknown } };
  return { status: response.status, code: json.error?.code };
}

const cases: Array<[string, string, string]> = [
  ['NUL in a group description', '/api/v1/groups', JSON.stringify({ name: 'nul-group', description: 'a\u0000b' })],
  ['NUL in a revocation reason', '/api/v1/certifications/revocations', JSON.stringify({ repository: 'a/b', digest: `sha256:${'0'.repeat(64)}`, reason: 'a\u0000b' })],
  ['NUL in a key', '/api/v1/groups', '{"name":"key-group","a\\u0000b":1}'],
  ['evidence nested 6000 levels', '/api/v1/certifications', `{"repository":"a/b","digest":"sha256:${'0'.repeat(64)}","role":"it","decision":"approve","evidence":${'['.repeat(6000)}${']'.repeat(6000)}}`],
];

for (const [label, path, body] of cases) {
  test(`${label} returns 400 INVALID_REQUEST`, async () => {
    const result = await post(path, body);
    assert.equal(result.status, 400);
    assert.equal(result.code, 'INVALID_REQUEST');
  });
}
