/**
 * The scan API and the Security gate over HTTP, with scan states and
 * findings written straight into the tables, so these tests do not depend on
 * what the detectors find. Every response is checked against openapi.yaml.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Response } from 'supertest';
import { apiRequest, errorCode } from '../helpers/api.js';
import { createReviewers, decideOk, getStatus, postDecision, type Reviewers } from '../helpers/certification-api.js';
import { CollectingEventSink } from '../helpers/events.js';
import { ociIndex, RegistryClient, uniqueRepository } from '../helpers/registry-client.js';
import { basicAuthorization, createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';
import { assertDocumented } from '../helpers/openapi.js';
import { SCAN_ENGINE_VERSION } from '../../src/scan/scheduler.js';

interface FindingBody {
  id: string;
  waived: boolean;
  preview: string;
  waiver: { reason: string; expiresAt: string | null; active: boolean } | null;
}

describe('scan API', () => {
  let server: TestServer;
  let reviewers: Reviewers;
  let client: RegistryClient;
  let developer = '';
  let outsider = '';
  let auditor = '';
  const events = new CollectingEventSink();

  before(async () => {
    server = await startTestServer({ events });
    reviewers = await createReviewers(server);
    client = new RegistryClient(server.url, server.admin);
    await createTestUser(server.db, 'developer');
    await grantToUser(server.db, 'developer', 'scans/**', ['pull']);
    developer = basicAuthorization({ username: 'developer', password: 'developer-password' });
    outsider = basicAuthorization(await createTestUser(server.db, 'outsider'));
    auditor = basicAuthorization(await createTestUser(server.db, 'auditor', ['auditors']));
  });
  after(() => server.close());

  /** Pushes an image, which queues its scan, and returns its digest. */
  async function push(repository: string): Promise<string> {
    return (await client.pushImage(repository)).digest;
  }

  /** Finishes the scan of a digest with the given number of findings, as a scan run would. */
  async function finishScan(digest: string, findings: number): Promise<void> {
    await server.db('scans').where({ digest }).update({ state: findings > 0 ? 'findings' : 'clean', engine_version: 'test', finished_at: server.db.fn.now() });
    for (let index = 0; index < findings; index++) {
      await server.db('scan_findings').insert({
        digest,
        layer: 'config',
        path: `Env[${index}]`,
        line: 1,
        detector: 'config-env-secret',
        severity: 'high',
        preview: `Pw-1…${'0'.repeat(12)}`,
        fingerprint: `${index}`.padStart(64, 'f'),
      });
    }
  }

  function getScan(authorization: string | undefined, repository: string, digest: string): Promise<Response> {
    return apiRequest(server, 'get', `/api/v1/scans?${new URLSearchParams({ repository, digest }).toString()}`, authorization);
  }

  function waive(authorization: string | undefined, id: string, body: object): Promise<Response> {
    return apiRequest(server, 'post', `/api/v1/scans/findings/${id}/waivers`, authorization).send(body);
  }

  function rescan(authorization: string | undefined, repository: string, digest: string): Promise<Response> {
    return apiRequest(server, 'post', `/api/v1/scans/${digest}/rescan`, authorization).send({ repository });
  }

  describe('push', () => {
    test('queues a scan of an image manifest', async () => {
      const digest = await push(uniqueRepository('scans'));
      const row = await server.db('scans').where({ digest }).first('state');
      assert.equal(row?.state, 'queued');
    });

    test('stores the scan job with the push', async () => {
      const digest = await push(uniqueRepository('scans'));
      const jobs = await server.db.raw(`select count(*)::int as count from pgboss.job where name = 'secret-scan' and data->>'digest' = ?`, [digest]);
      assert.equal(jobs.rows[0].count, 1);
    });

    test('queues no new scan when a finished digest is pushed again', async () => {
      const repository = uniqueRepository('scans');
      const manifest = await client.pushImage(repository);
      await finishScan(manifest.digest, 0);
      await server.db('scans').where({ digest: manifest.digest }).update({ engine_version: SCAN_ENGINE_VERSION });
      await client.pushManifest(repository, 'copy', manifest);
      const row = await server.db('scans').where({ digest: manifest.digest }).first('state');
      assert.equal(row?.state, 'clean');
    });

    test('queues a new scan when the engine version changed', async () => {
      const repository = uniqueRepository('scans');
      const manifest = await client.pushImage(repository);
      await finishScan(manifest.digest, 0);
      await client.pushManifest(repository, 'copy', manifest);
      const row = await server.db('scans').where({ digest: manifest.digest }).first('state');
      assert.equal(row?.state, 'queued');
    });

    test('queues no scan of an index itself', async () => {
      const repository = uniqueRepository('scans');
      const child = await client.pushImage(repository);
      const index = ociIndex([child.descriptor]);
      await client.pushManifest(repository, 'multi', index);
      const row = await server.db('scans').where({ digest: index.digest }).first('state');
      assert.equal(row, undefined);
    });
  });

  describe('GET /api/v1/scans', () => {
    test('returns 200 with the state and findings for a reader with pull', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      await finishScan(digest, 2);
      const response = await getScan(developer, repository, digest);
      assertDocumented('/api/v1/scans', 'get', response);
      assert.equal(response.body.state, 'findings');
      assert.equal(response.body.openFindings, 2);
      assert.equal(response.body.findings.length, 2);
    });

    test('returns queued before the scan ran', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      const response = await getScan(reviewers.qa, repository, digest);
      assertDocumented('/api/v1/scans', 'get', response);
      assert.equal(response.body.state, 'queued');
    });

    test('adds up the states of an index', async () => {
      const repository = uniqueRepository('scans');
      const first = await client.pushImage(repository);
      const second = await client.pushImage(repository);
      await finishScan(first.digest, 1);
      const index = ociIndex([first.descriptor, second.descriptor]);
      await client.pushManifest(repository, 'multi', index);
      const response = await getScan(auditor, repository, index.digest);
      assertDocumented('/api/v1/scans', 'get', response);
      assert.equal(response.body.state, 'queued');
      assert.equal(response.body.images.length, 2);
      assert.equal(response.body.openFindings, 1);
    });

    test('returns 403 without pull, certify, audit:read or admin', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      const response = await getScan(outsider, repository, digest);
      assertDocumented('/api/v1/scans', 'get', response);
      assert.equal(response.status, 403);
    });

    test('returns 404 for a digest that is not in the repository', async () => {
      const response = await getScan(reviewers.security, uniqueRepository('scans'), `sha256:${'0'.repeat(64)}`);
      assertDocumented('/api/v1/scans', 'get', response);
      assert.equal(response.status, 404);
    });

    test('returns 400 for a tag in place of a digest', async () => {
      const response = await getScan(reviewers.security, 'scans/app', 'latest');
      assertDocumented('/api/v1/scans', 'get', response);
      assert.equal(response.status, 400);
    });

    test('returns 401 without credentials', async () => {
      const response = await getScan(undefined, 'scans/app', `sha256:${'0'.repeat(64)}`);
      assertDocumented('/api/v1/scans', 'get', response);
      assert.equal(response.status, 401);
    });
  });

  describe('POST /api/v1/scans/findings/{id}/waivers', () => {
    let repository = '';
    let findings: FindingBody[] = [];

    before(async () => {
      repository = uniqueRepository('scans');
      const digest = await push(repository);
      await finishScan(digest, 3);
      findings = (await getScan(reviewers.security, repository, digest)).body.findings as FindingBody[];
    });

    test('returns 201 with the waived finding', async () => {
      const finding = findings[0] as FindingBody;
      const response = await waive(reviewers.security, finding.id, { reason: 'test fixture, not a real password' });
      assertDocumented('/api/v1/scans/findings/{id}/waivers', 'post', response);
      assert.equal(response.status, 201);
      assert.equal(response.body.waived, true);
    });

    test('records a scan.waiver event', async () => {
      const finding = findings[1] as FindingBody;
      const expiresAt = new Date(Date.now() + 3600_000).toISOString();
      await waive(reviewers.security, finding.id, { reason: 'rotated', expiresAt });
      const recorded = events.ofAction('scan.waiver').find((event) => event.findingId === finding.id);
      assert.deepEqual(recorded && { reason: recorded.reason, expiresAt: recorded.expiresAt, by: recorded.by }, { reason: 'rotated', expiresAt, by: 'reviewer-security' });
    });

    test('returns 400 for an expiry in the past', async () => {
      const response = await waive(reviewers.security, (findings[2] as FindingBody).id, { reason: 'late', expiresAt: '2000-01-01T00:00:00Z' });
      assertDocumented('/api/v1/scans/findings/{id}/waivers', 'post', response);
      assert.equal(response.status, 400);
    });

    test('returns 400 for a blank reason', async () => {
      const response = await waive(reviewers.security, (findings[2] as FindingBody).id, { reason: '   ' });
      assertDocumented('/api/v1/scans/findings/{id}/waivers', 'post', response);
      assert.equal(response.status, 400);
    });

    test('returns 403 for an administrator without certify:security', async () => {
      const response = await waive(server.adminAuthorization, (findings[2] as FindingBody).id, { reason: 'admin' });
      assertDocumented('/api/v1/scans/findings/{id}/waivers', 'post', response);
      assert.equal(response.status, 403);
    });

    test('returns 404 for an unknown finding', async () => {
      const response = await waive(reviewers.security, '00000000-0000-4000-8000-000000000000', { reason: 'unknown' });
      assertDocumented('/api/v1/scans/findings/{id}/waivers', 'post', response);
      assert.equal(response.status, 404);
    });

    test('counts a finding with an expired waiver as open', async () => {
      const finding = findings[2] as FindingBody;
      await server.db('scan_waivers').insert({ finding_id: finding.id, reason: 'old', expires_at: new Date(Date.now() - 1000), actor: 'reviewer-security' });
      const digest = (await server.db('scan_findings').where({ id: finding.id }).first('digest')).digest as string;
      const body = (await getScan(reviewers.security, repository, digest)).body as { findings: FindingBody[] };
      assert.equal(body.findings.find((entry) => entry.id === finding.id)?.waived, false);
    });
  });

  describe('POST /api/v1/scans/{digest}/rescan', () => {
    test('returns 202 and queues the scan again', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      await finishScan(digest, 0);
      const response = await rescan(reviewers.security, repository, digest);
      assertDocumented('/api/v1/scans/{digest}/rescan', 'post', response);
      assert.equal(response.body.state, 'queued');
    });

    test('records a scan.rescan event', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      await rescan(server.adminAuthorization, repository, digest);
      assert.ok(events.ofAction('scan.rescan').some((event) => event.digest === digest && event.repository === repository && event.by === 'admin'));
    });

    test('returns 409 while a run holds the scan', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      await server.db('scans').where({ digest }).update({ state: 'scanning', lease_owner: 'another-run', lease_expires_at: server.db.raw(`now() + interval '1 minute'`) });
      const response = await rescan(reviewers.security, repository, digest);
      assertDocumented('/api/v1/scans/{digest}/rescan', 'post', response);
      assert.equal(response.status, 409);
    });

    test('returns 403 for a QA reviewer', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      const response = await rescan(reviewers.qa, repository, digest);
      assertDocumented('/api/v1/scans/{digest}/rescan', 'post', response);
      assert.equal(response.status, 403);
    });

    test('returns 404 for a manifest in another repository', async () => {
      const digest = await push(uniqueRepository('scans'));
      const response = await rescan(reviewers.security, uniqueRepository('scans'), digest);
      assertDocumented('/api/v1/scans/{digest}/rescan', 'post', response);
      assert.equal(response.status, 404);
    });
  });

  describe('Security approval', () => {
    test('returns 409 scan_unfinished while the scan is queued', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      const response = await postDecision(server, reviewers.security, { repository, digest, role: 'security' });
      assertDocumented('/api/v1/certifications', 'post', response);
      assert.equal(response.body.error?.details?.reason, 'scan_unfinished');
    });

    test('returns 409 scan_failed after a failed scan', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      await server.db('scans').where({ digest }).update({ state: 'failed', error: 'blob missing' });
      const response = await postDecision(server, reviewers.security, { repository, digest, role: 'security' });
      assert.equal(response.body.error?.details?.reason, 'scan_failed');
    });

    test('returns 409 naming the number of open findings', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      await finishScan(digest, 2);
      const response = await postDecision(server, reviewers.security, { repository, digest, role: 'security' });
      assert.match(response.body.error?.message ?? '', /has 2 finding\(s\) that are not waived: waive each with POST \/api\/v1\/scans\/findings\/\{id\}\/waivers/);
    });

    test('accepts a rejection before the scan finished', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      const response = await postDecision(server, reviewers.security, { repository, digest, role: 'security', decision: 'reject' });
      assert.equal(response.status, 201);
    });

    test('accepts approvals of other roles before the scan finished', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      const response = await postDecision(server, reviewers.it, { repository, digest, role: 'it' });
      assert.equal(response.status, 201);
    });

    test('is accepted once every finding is waived', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      await finishScan(digest, 2);
      const findings = (await getScan(reviewers.security, repository, digest)).body.findings as FindingBody[];
      for (const finding of findings) await waive(reviewers.security, finding.id, { reason: 'fixture' });
      const response = await decideOk(server, reviewers.security, { repository, digest, role: 'security' });
      assert.equal(response.body.decision.role, 'security');
    });

    test('the status shows the scan state and open findings', async () => {
      const repository = uniqueRepository('scans');
      const digest = await push(repository);
      await finishScan(digest, 1);
      const response = await getStatus(server, reviewers.qa, repository, digest);
      assertDocumented('/api/v1/certifications/status', 'get', response);
      assert.deepEqual(response.body.scan, { state: 'findings', openFindings: 1 });
    });

    test('the index status waits for every child scan', async () => {
      const repository = uniqueRepository('scans');
      const first = await client.pushImage(repository);
      const second = await client.pushImage(repository);
      await finishScan(first.digest, 0);
      const index = ociIndex([first.descriptor, second.descriptor]);
      await client.pushManifest(repository, 'multi', index);
      const response = await postDecision(server, reviewers.security, { repository, digest: index.digest, role: 'security' });
      assert.equal(errorCode(response), 'CONFLICT');
    });
  });
});
