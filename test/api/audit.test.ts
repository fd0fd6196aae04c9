import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import type { Response } from 'supertest';
import { apiRequest, bearerAuthorization, errorCode, problemFields } from '../helpers/api.js';
import { appendTestEvents, fakeDigest } from '../helpers/audit.js';
import { approveAll, createReviewers, decideOk, postRevocation, pushImage, type Reviewers } from '../helpers/certification-api.js';
import { assertDocumented } from '../helpers/openapi.js';
import { MEDIA, ociIndex, RegistryClient, uniqueRepository } from '../helpers/registry-client.js';
import { recordCleanScan } from '../helpers/scan-state.js';
import { basicAuthorization, createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';

type Json = Record<string, unknown>;

/**
 * Reads any body as text into `response.body`, whatever its media type. On
 * Node superagent hands a parser the IncomingMessage stream, although its
 * types call that argument a Response.
 */
function collectText(response: Response, callback: (error: Error | null, body: string) => void): void {
  const stream = response as unknown as http.IncomingMessage;
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text += chunk;
  });
  stream.on('end', () => callback(null, text));
  stream.on('error', (error: Error) => callback(error, ''));
}

/**
 * Parses RFC 4180 CSV with CRLF line ends. An unquoted empty cell is null and
 * a quoted one is the empty string, as the export writes them.
 */
function parseCsv(text: string): Array<Array<string | null>> {
  const rows: Array<Array<string | null>> = [];
  let row: Array<string | null> = [];
  let index = 0;
  while (index < text.length) {
    let cell: string | null;
    if (text[index] === '"') {
      let value = '';
      index += 1;
      for (;;) {
        const quote = text.indexOf('"', index);
        assert.ok(quote >= 0, 'unterminated quoted CSV cell');
        value += text.slice(index, quote);
        index = quote + 1;
        if (text[index] !== '"') break;
        value += '"';
        index += 1;
      }
      cell = value;
    } else {
      const end = text.slice(index).search(/,|\r\n/);
      const value = end < 0 ? text.slice(index) : text.slice(index, index + end);
      index += value.length;
      cell = value === '' ? null : value;
    }
    row.push(cell);
    if (text.startsWith('\r\n', index)) {
      rows.push(row);
      row = [];
      index += 2;
    } else {
      assert.equal(text[index], ',', `expected a comma at offset ${index}`);
      index += 1;
    }
  }
  return rows;
}

/** Turns CSV rows back into event views: undoes the formula guard, parses numbers and details, and nests actor.*. */
function eventsOfCsv(text: string): Json[] {
  const [header, ...rows] = parseCsv(text);
  assert.ok(header, 'the CSV has no header row');
  return rows.map((row) => {
    const event: Json = { actor: {} };
    header.forEach((name, column) => {
      let value: unknown = row[column] ?? null;
      if (typeof value === 'string' && value.startsWith("'")) value = value.slice(1);
      if ((name === 'seq' || name === 'bytes') && value !== null) value = Number(value);
      if (name === 'details') value = JSON.parse(value as string);
      if (name!.startsWith('actor.')) (event.actor as Json)[name!.slice('actor.'.length)] = value;
      else event[name!] = value;
    });
    return event;
  });
}

describe('audit API', () => {
  let server: TestServer;
  let auditor: string;
  let reviewers: Reviewers;

  function get(path: string, authorization: string | undefined = auditor): request.Test {
    return apiRequest(server, 'get', path, authorization);
  }

  function exportOf(query: string, accept: 'text/csv' | 'application/x-ndjson'): Promise<Response> {
    return get(`/api/v1/audit/events?${query}`).set('Accept', accept).buffer(true).parse(collectText);
  }

  /** Collects every event of a JSON query by following nextCursor. */
  async function allPages(query: string, limit: number): Promise<Json[]> {
    const events: Json[] = [];
    let cursor: string | null = null;
    do {
      const response: Response = await get(`/api/v1/audit/events?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(response.status, 200, response.text);
      events.push(...(response.body.events as Json[]));
      cursor = response.body.nextCursor as string | null;
    } while (cursor !== null);
    return events;
  }

  before(async () => {
    server = await startTestServer({ trustedProxies: ['127.0.0.1'] });
    auditor = basicAuthorization(await createTestUser(server.db, 'auditor', ['auditors']));
    reviewers = await createReviewers(server);
  });
  after(() => server.close());

  describe('access', () => {
    for (const path of ['/api/v1/audit/events', `/api/v1/audit/pulls?digest=${fakeDigest('a')}`, `/api/v1/audit/exposure?repository=a/b&digest=${fakeDigest('a')}`, '/api/v1/audit/verify']) {
      test(`${path.split('?')[0]} returns 401 without credentials`, async () => {
        const response = await apiRequest(server, 'get', path);
        assert.equal(response.status, 401);
        assertDocumented(path.split('?')[0]!, 'get', response);
      });

      test(`${path.split('?')[0]} returns 403 for an administrator`, async () => {
        const response = await get(path, server.adminAuthorization);
        assert.equal(response.status, 403);
        assert.deepEqual(response.body.error.details, { required: 'audit:read' });
        assertDocumented(path.split('?')[0]!, 'get', response);
      });
    }

    test('an auditor with a Bearer token gets 200', async () => {
      const response = await get('/api/v1/audit/events?limit=1', await bearerAuthorization(server, auditor));
      assert.equal(response.status, 200);
    });

    test('an unknown audit path returns 404', async () => {
      const response = await get('/api/v1/audit/nothing');
      assert.equal(response.status, 404);
    });

    test('responses may not be cached', async () => {
      const response = await get('/api/v1/audit/events?limit=1');
      assert.equal(response.headers['cache-control'], 'no-store');
    });
  });

  describe('validation', () => {
    const cases: Array<[string, string, string]> = [
      ['/api/v1/audit/events?digest=sha256:abc', 'digest', 'a short digest'],
      ['/api/v1/audit/events?from=yesterday', 'from', 'a time that is not RFC 3339'],
      ['/api/v1/audit/events?to=2024-05-01T00:00:00', 'to', 'a time without a zone'],
      ['/api/v1/audit/events?from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z', 'from', 'from after to'],
      ['/api/v1/audit/events?cursor=not-a-cursor', 'cursor', 'a forged cursor'],
      ['/api/v1/audit/events?limit=0', 'limit', 'a limit of 0'],
      ['/api/v1/audit/events?limit=1001', 'limit', 'a limit above 1000'],
      ['/api/v1/audit/events?limit=ten', 'limit', 'a limit that is no number'],
      ['/api/v1/audit/events?repository=Team/App', 'repository', 'an invalid repository name'],
      ['/api/v1/audit/events?repository=a/b&repository=c/d', 'repository', 'a repeated parameter'],
      ['/api/v1/audit/events?repositoryPrefix=a%00b', 'repositoryPrefix', 'a prefix with NUL'],
      ['/api/v1/audit/events?tag=-v1', 'tag', 'an invalid tag'],
      ['/api/v1/audit/events?actor=', 'actor', 'an empty actor'],
      ['/api/v1/audit/events?action=Manifest.Pull', 'action', 'an invalid action'],
      ['/api/v1/audit/events?action=manifest.pul', 'action', 'a misspelt action'],
      ['/api/v1/audit/events?decision=maybe', 'decision', 'an unknown decision'],
      ['/api/v1/audit/events?clientAddress=example.com', 'clientAddress', 'a host name as address'],
      ['/api/v1/audit/events?repo=a/b', 'repo', 'an unknown parameter'],
      ['/api/v1/audit/pulls', 'digest', 'pulls without a digest'],
      ['/api/v1/audit/exposure?digest=sha256:' + 'a'.repeat(64), 'repository', 'exposure without a repository'],
      ['/api/v1/audit/verify?from=2024-13-01T00:00:00Z', 'from', 'verify with an invalid month'],
    ];
    for (const [path, field, name] of cases) {
      test(`${name} returns 400 naming ${field}`, async () => {
        const response = await get(path);
        assert.equal(response.status, 400, response.text);
        assert.equal(errorCode(response), 'INVALID_REQUEST');
        assert.ok(problemFields(response).includes(field), `problems name ${problemFields(response).join(', ')}`);
      });
    }

    test('a missing parameter is called required', async () => {
      const response = await get('/api/v1/audit/pulls');
      assert.match(response.body.error.message as string, /digest: required/);
    });

    test('an export with limit returns 400 naming limit', async () => {
      const response = await get('/api/v1/audit/events?limit=5').set('Accept', 'text/csv');
      assert.equal(response.status, 400);
      assert.deepEqual(problemFields(response), ['limit']);
    });

    test('an unsupported Accept returns 406', async () => {
      const response = await get('/api/v1/audit/events').set('Accept', 'image/png');
      assert.equal(response.status, 406);
      assert.equal(errorCode(response), 'NOT_ACCEPTABLE');
      assertDocumented('/api/v1/audit/events', 'get', response);
    });

    test('a 400 is documented', async () => {
      assertDocumented('/api/v1/audit/events', 'get', await get('/api/v1/audit/events?limit=0'));
    });
  });

  describe('events and exports', () => {
    const repository = 'export/app';
    const formula = '=HYPERLINK("https://attacker.example","x")';

    before(async () => {
      await appendTestEvents(server.db, [
        { action: 'manifest.pull', repository, reference: 'v1', digest: fakeDigest('1'), mediaType: MEDIA.ociManifest, bytes: 512, decision: 'allowed', reason: 'certified', policy: 'default', certificationState: 'certified', actorSubject: 'alice', tokenId: 'jti-1', clientAddress: '192.0.2.1', userAgent: formula, requestId: 'r-1' },
        { action: 'pull.denied', repository, digest: fakeDigest('2'), decision: 'denied', reason: 'not certified, "waiting",\r\nfor qa', actorSubject: 'bob', userAgent: '', details: { kind: 'manifest', nested: { list: [1, 'two', null] } } },
        { action: 'manifest.push', repository, reference: 'v2', digest: fakeDigest('3'), actorKind: 'robot', actorSubject: 'robot$ci', userAgent: "'quoted", details: { previousDigest: null } },
        { action: 'blob.pull', repository, digest: fakeDigest('4'), bytes: 0, decision: 'would-deny', actorKind: 'anonymous', userAgent: '-1+1', reason: '@sum' },
      ]);
      // More than one export batch of 1000 rows, and more than one 64 KiB chunk.
      await appendTestEvents(server.db, Array.from({ length: 2100 }, (_, index) => ({ action: 'blob.pull', repository: 'export/bulk', digest: fakeDigest('5'), decision: 'allowed' as const, requestId: `bulk-${index}` })));
    });

    test('NDJSON equals the JSON pages event by event', async () => {
      const pages = await allPages(`repository=${repository}`, 2);
      const response = await exportOf(`repository=${repository}`, 'application/x-ndjson');
      assert.equal(response.status, 200);
      const lines = (response.body as string).trimEnd().split('\n').map((line) => JSON.parse(line) as Json);
      assert.equal(lines.length, 4);
      assert.deepEqual(lines, pages);
    });

    test('CSV equals the JSON pages field by field', async () => {
      const pages = await allPages(`repository=${repository}`, 3);
      const response = await exportOf(`repository=${repository}`, 'text/csv');
      assert.equal(response.status, 200);
      const rows = eventsOfCsv(response.body as string);
      assert.equal(rows.length, pages.length);
      rows.forEach((row, index) => {
        for (const [field, value] of Object.entries(pages[index]!)) assert.deepEqual(row[field], value, `event ${index} field ${field}`);
      });
    });

    test('CSV guards a formula with an apostrophe', async () => {
      const response = await exportOf(`repository=${repository}&actor=alice`, 'text/csv');
      assert.ok((response.body as string).includes(`,"'${formula.replaceAll('"', '""')}",`), response.body as string);
    });

    test('CSV starts with the header row', async () => {
      const response = await exportOf(`repository=${repository}`, 'text/csv');
      assert.match(response.body as string, /^seq,occurredAt,action,actor\.kind,actor\.subject,actor\.tokenId,clientAddress,userAgent,requestId,repository,reference,digest,mediaType,bytes,decision,reason,policy,certificationState,replica,details,hash,prevHash,contentHash\r\n/);
    });

    test('an export is an attachment with a file name', async () => {
      const csv = await exportOf(`repository=${repository}`, 'text/csv');
      const ndjson = await exportOf(`repository=${repository}`, 'application/x-ndjson');
      assert.match(String(csv.headers['content-disposition']), /^attachment; filename="audit-events-\d{8}T\d{6}Z\.csv"$/);
      assert.match(String(ndjson.headers['content-disposition']), /^attachment; filename="audit-events-\d{8}T\d{6}Z\.ndjson"$/);
    });

    test('an export streams every event across batches', async () => {
      const response = await exportOf('repository=export/bulk', 'application/x-ndjson');
      const lines = (response.body as string).trimEnd().split('\n').map((line) => JSON.parse(line) as { seq: number; requestId: string });
      assert.equal(lines.length, 2100);
      assert.equal(lines[0]!.requestId, 'bulk-2099');
      assert.equal(lines[2099]!.requestId, 'bulk-0');
    });

    test('an export with no match is the CSV header alone', async () => {
      const response = await exportOf('repository=export/none', 'text/csv');
      assert.equal(eventsOfCsv(response.body as string).length, 0);
    });

    test('exports match openapi.yaml', async () => {
      const ndjson = await exportOf(`repository=${repository}`, 'application/x-ndjson');
      assertDocumented('/api/v1/audit/events', 'get', { ...ndjson, text: ndjson.body as string });
      const csv = await exportOf(`repository=${repository}`, 'text/csv');
      assertDocumented('/api/v1/audit/events', 'get', { ...csv, text: csv.body as string });
    });

    test('the Link header leads to the next page', async () => {
      const first = await get('/api/v1/audit/events?repository=export/bulk&limit=2');
      assertDocumented('/api/v1/audit/events', 'get', first);
      const link = String(first.headers.link);
      const match = /^<([^>]+)>; rel="next"$/.exec(link);
      assert.ok(match, link);
      const second = await get(match[1]!);
      assert.equal(second.status, 200);
      assert.deepEqual(
        second.body.events.map((event: { requestId: string }) => event.requestId),
        ['bulk-2097', 'bulk-2096'],
      );
    });

    test('the last page has no Link header', async () => {
      const response = await get(`/api/v1/audit/events?repository=${repository}&limit=10`);
      assert.equal(response.headers.link, undefined);
      assert.equal(response.body.nextCursor, null);
    });

    test('a client that disconnects during an export leaves the gateway serving', async () => {
      const url = new URL('/api/v1/audit/events?repositoryPrefix=export/', server.url);
      await new Promise<void>((resolve, reject) => {
        const outgoing = http.get(url, { headers: { Authorization: auditor, Accept: 'application/x-ndjson' } }, (incoming) => {
          incoming.once('data', () => {
            outgoing.destroy();
            resolve();
          });
        });
        outgoing.on('error', (error: NodeJS.ErrnoException) => {
          if (error.code !== 'ECONNRESET') reject(error);
        });
      });
      const response = await get('/api/v1/audit/events?limit=1');
      assert.equal(response.status, 200);
    });
  });

  describe('exposure of a revoked index', () => {
    const repository = uniqueRepository('exposed-index');
    let exposure: Response;

    before(async () => {
      await createTestUser(server.db, 'carol');
      await grantToUser(server.db, 'carol', repository, ['pull']);
      const admin = new RegistryClient(server.url, server.admin);
      const child = await admin.pushImage(repository);
      await recordCleanScan(server.db, child.digest);
      const index = await admin.pushManifest(repository, 'v1', ociIndex([{ ...child.descriptor, platform: { architecture: 'amd64', os: 'linux' } }]));
      await approveAll(server, reviewers, repository, index.digest);

      const carol = new RegistryClient(server.url, { username: 'carol', password: 'carol-password' });
      assert.equal((await carol.http.get(`/v2/${repository}/manifests/${child.digest}`).set('Accept', MEDIA.ociManifest)).status, 200);
      assert.equal((await postRevocation(server, reviewers.security, { repository, digest: index.digest, reason: 'bad base' })).status, 201);
      exposure = await get(`/api/v1/audit/exposure?repository=${repository}&digest=${index.digest}`);
    });

    test('lists a child pulled by its own digest', () => {
      assert.deepEqual(
        exposure.body.actors.map((actor: { actor: { subject: string } }) => actor.actor.subject),
        ['carol'],
      );
    });
  });

  describe('pulls and exposure of a revoked image', () => {
    const repository = uniqueRepository('exposed');
    let digest: string;
    let revokedAt: string;
    let exposure: Response;
    let pulls: Response;

    /** Pulls the image's manifest by tag as a user from a client address, and returns the status. */
    async function pullAs(username: string, address: string): Promise<number> {
      const client = new RegistryClient(server.url, { username, password: `${username}-password` });
      const response = await client.http.get(`/v2/${repository}/manifests/v1`).set('Accept', MEDIA.ociManifest).set('X-Forwarded-For', address);
      return response.status;
    }

    before(async () => {
      for (const username of ['alice', 'bob']) {
        await createTestUser(server.db, username);
        await grantToUser(server.db, username, `${repository}`, ['pull']);
      }
      digest = await pushImage(server, repository, 'v1');
      await recordCleanScan(server.db, digest);
      await approveAll(server, reviewers, repository, digest);

      assert.equal(await pullAs('alice', '203.0.113.10'), 200);
      assert.equal(await pullAs('bob', '203.0.113.20'), 200);
      assert.equal(await pullAs('bob', '203.0.113.21'), 200);
      const revocation = await postRevocation(server, reviewers.security, { repository, digest, reason: 'CVE in the base layer' });
      assert.equal(revocation.status, 201, revocation.text);
      revokedAt = revocation.body.revocation.createdAt as string;
      assert.equal(await pullAs('alice', '203.0.113.10'), 403);
      const admin = new RegistryClient(server.url, server.admin);
      assert.equal((await admin.http.get(`/v2/${repository}/manifests/v1`).set('Accept', MEDIA.ociManifest)).status, 200);

      exposure = await get(`/api/v1/audit/exposure?repository=${repository}&digest=${digest}`);
      pulls = await get(`/api/v1/audit/pulls?digest=${digest}`);
    });

    test('exposure returns 200 and matches openapi.yaml', () => {
      assert.equal(exposure.status, 200, exposure.text);
      assertDocumented('/api/v1/audit/exposure', 'get', exposure);
    });

    test('exposure says the digest was revoked', () => {
      assert.equal(exposure.body.status, 'revoked');
      assert.equal(exposure.body.incidents.length, 1);
      assert.equal(exposure.body.incidents[0].actor, 'reviewer-security');
      assert.equal(exposure.body.incidents[0].reason, 'CVE in the base layer');
    });

    test('the exposure window ends at the revocation', () => {
      const endsAt = Date.parse(exposure.body.exposureEndsAt as string);
      assert.ok(Math.abs(endsAt - Date.parse(revokedAt)) < 5000, `${exposure.body.exposureEndsAt} vs ${revokedAt}`);
    });

    test('exposure lists both users with their pulls and addresses', () => {
      const actors = exposure.body.actors.map((actor: Json) => ({ actor: actor.actor, pulls: actor.pulls, clientAddresses: actor.clientAddresses }));
      assert.deepEqual(actors, [
        { actor: { kind: 'user', subject: 'alice' }, pulls: 1, clientAddresses: ['203.0.113.10'] },
        { actor: { kind: 'user', subject: 'bob' }, pulls: 2, clientAddresses: ['203.0.113.20', '203.0.113.21'] },
      ]);
    });

    test('exposure lists only pulls before the revocation', () => {
      assert.equal(exposure.body.pulls, 3);
      const incidentSeq = exposure.body.incidents[0].seq as number;
      assert.ok(exposure.body.events.every((event: { seq: number }) => event.seq < incidentSeq));
    });

    test('exposure lists who pulled after the revocation', () => {
      assert.deepEqual(
        exposure.body.pulledAfter.map((actor: { actor: { subject: string }; pulls: number }) => [actor.actor.subject, actor.pulls]),
        [['admin', 1]],
      );
    });

    test('exposure leaves out the denied attempt', () => {
      assert.ok(exposure.body.events.every((event: { action: string; decision: string }) => event.action === 'manifest.pull' && event.decision === 'allowed'));
    });

    test('pull times lie before the revocation', () => {
      for (const actor of exposure.body.actors as Array<{ lastAt: string }>) assert.ok(Date.parse(actor.lastAt) <= Date.parse(exposure.body.exposureEndsAt as string));
    });

    test('pulls returns 200 and matches openapi.yaml', () => {
      assert.equal(pulls.status, 200, pulls.text);
      assertDocumented('/api/v1/audit/pulls', 'get', pulls);
    });

    test('pulls counts every served pull, after the revocation too', () => {
      assert.equal(pulls.body.pulls, 4);
      assert.deepEqual(
        pulls.body.actors.map((actor: { actor: { subject: string } }) => actor.actor.subject),
        ['alice', 'bob', 'admin'],
      );
    });

    test('the denied attempt is on the trail as pull.denied', async () => {
      const response = await get(`/api/v1/audit/events?repository=${repository}&action=pull.denied`);
      assert.equal(response.body.events.length, 1);
      assert.equal(response.body.events[0].actor.subject, 'alice');
      assert.equal(response.body.events[0].clientAddress, '203.0.113.10');
    });

    test('exposure of a digest never revoked says not-revoked', async () => {
      const other = uniqueRepository('clean');
      const otherDigest = await pushImage(server, other);
      const response = await get(`/api/v1/audit/exposure?repository=${other}&digest=${otherDigest}`);
      assert.equal(response.body.status, 'not-revoked');
      assert.equal(response.body.exposureEndsAt, null);
      assert.deepEqual(response.body.incidents, []);
    });

    test('exposure of a rejected digest says rejected', async () => {
      const rejected = uniqueRepository('rejected');
      const rejectedDigest = await pushImage(server, rejected);
      await decideOk(server, reviewers.qa, { repository: rejected, digest: rejectedDigest, role: 'qa', decision: 'reject', comment: 'fails smoke tests' });
      const response = await get(`/api/v1/audit/exposure?repository=${rejected}&digest=${rejectedDigest}`);
      assert.equal(response.body.status, 'rejected');
      assert.equal(response.body.incidents[0].role, 'qa');
    });
  });

  describe('verify', () => {
    test('the live chain verifies', async () => {
      const response = await get('/api/v1/audit/verify');
      assert.equal(response.status, 200);
      assert.equal(response.body.ok, true, JSON.stringify(response.body.problem));
      assertDocumented('/api/v1/audit/verify', 'get', response);
    });

    test('a range without events verifies with nothing checked', async () => {
      const response = await get('/api/v1/audit/verify?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z');
      assert.deepEqual(response.body, { ok: true, checked: 0, firstSeq: null, lastSeq: null, problem: null });
    });
  });
});
