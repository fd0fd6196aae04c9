import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuditEventRow } from '../../src/audit/store.js';
import { verifyChain } from '../../src/audit/verify.js';
import type { Database } from '../../src/db/database.js';
import { bearerAuthorization, decodeJwt, fetchToken, postTokenForm } from '../helpers/auth.js';
import { approveAll, createReviewers, decideOk, postRevocation } from '../helpers/certification-api.js';
import { assertOciError, RegistryClient, uniqueRepository, type ManifestDocument } from '../helpers/registry-client.js';
import { recordCleanScan } from '../helpers/scan-state.js';
import { createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';

type Row = AuditEventRow;

/** Returns the first layer of an image manifest. */
function layerOf(document: ManifestDocument): { digest: string; size: number } {
  const parsed = JSON.parse(document.body.toString()) as { layers: Array<{ digest: string; size: number }> };
  const layer = parsed.layers[0];
  assert.ok(layer, 'the manifest has no layer');
  return layer;
}

async function rowsOf(db: Database, repository: string): Promise<Row[]> {
  return db('audit_events').where({ repository }).orderBy('seq').select('*');
}

async function lastRow(db: Database, where: Record<string, unknown>): Promise<Row | undefined> {
  return db('audit_events').where(where).orderBy('seq', 'desc').first('*');
}

/** Moves the chain head away, so every append fails until it is put back. */
async function breakTrail(db: Database): Promise<() => Promise<void>> {
  await db.raw('alter table audit_chain rename to audit_chain_away');
  return async () => {
    await db.raw('alter table audit_chain_away rename to audit_chain');
  };
}

describe('audit trail of a registry session', () => {
  let server: TestServer;
  let admin: RegistryClient;
  let deployer: RegistryClient;
  const repository = uniqueRepository('audited/app');
  let first: ManifestDocument;
  let second: ManifestDocument;

  before(async () => {
    server = await startTestServer({ trustedProxies: ['127.0.0.1'] });
    admin = new RegistryClient(server.url, server.admin);
    const login = await createTestUser(server.db, 'deployer');
    await grantToUser(server.db, 'deployer', 'audited/**', ['pull']);
    deployer = new RegistryClient(server.url, login);
    first = await admin.pushImage(repository, 'v1');
    second = await admin.pushImage(repository, 'v1');
  });

  after(async () => {
    await server.close();
  });

  describe('pushes', () => {
    test('a blob commit is recorded with its size', async () => {
      const row = await lastRow(server.db, { action: 'blob.push', repository, digest: layerOf(first).digest });
      assert.equal(row?.bytes, layerOf(first).size);
    });

    test('a manifest push records the tag, media type and size', async () => {
      const row = await lastRow(server.db, { action: 'manifest.push', repository, digest: first.digest });
      assert.deepEqual([row?.reference, row?.media_type, row?.bytes], ['v1', first.mediaType, first.size]);
    });

    test('the first push of a tag records no previous digest', async () => {
      const row = await lastRow(server.db, { action: 'manifest.push', repository, digest: first.digest });
      assert.deepEqual(row?.details, { previousDigest: null });
    });

    test('a tag move records the old digest', async () => {
      const row = await lastRow(server.db, { action: 'manifest.push', repository, digest: second.digest });
      assert.deepEqual(row?.details, { previousDigest: first.digest });
    });

    test('pushes name the user who made them', async () => {
      const row = await lastRow(server.db, { action: 'manifest.push', repository, digest: second.digest });
      assert.deepEqual([row?.actor_kind, row?.actor_subject], ['user', 'admin']);
    });

    test('pushes name the replica that served them', async () => {
      const row = await lastRow(server.db, { action: 'manifest.push', repository, digest: second.digest });
      assert.equal(row?.replica, server.replica);
    });
  });

  describe('a denied pull', () => {
    let row: Row | undefined;

    before(async () => {
      const response = await deployer.http.get(`/v2/${repository}/manifests/v1`).set('X-Forwarded-For', '203.0.113.9').set('X-Request-Id', 'denied-pull-1').set('User-Agent', 'audit-test/1.0');
      assertOciError(response, 403, 'DENIED');
      row = await lastRow(server.db, { request_id: 'denied-pull-1' });
    });

    test('is recorded as denied', () => {
      assert.deepEqual([row?.action, row?.decision], ['pull.denied', 'denied']);
    });

    test('records the reason the gate gave', () => {
      assert.match(row?.reason ?? '', /not certified/);
    });

    test('records the policy and the certification state', () => {
      assert.deepEqual([row?.policy, row?.certification_state], ['default', 'pending']);
    });

    test('records the tag and the digest it resolved to', () => {
      assert.deepEqual([row?.reference, row?.digest], ['v1', second.digest]);
    });

    test('takes the client address from X-Forwarded-For of a trusted proxy', () => {
      assert.equal(row?.client_address, '203.0.113.9');
    });

    test('records the user agent', () => {
      assert.equal(row?.user_agent, 'audit-test/1.0');
    });

    test('records the user who asked', () => {
      assert.deepEqual([row?.actor_kind, row?.actor_subject], ['user', 'deployer']);
    });
  });

  describe('certification and allowed pulls', () => {
    let reviewers: Awaited<ReturnType<typeof createReviewers>>;
    let manifestPull: Row | undefined;
    let blobPull: Row | undefined;
    let tokenPull: Row | undefined;
    let tokenId: string;

    before(async () => {
      reviewers = await createReviewers(server, 'audit-reviewer');
      await recordCleanScan(server.db, second.digest);
      await approveAll(server, reviewers, repository, second.digest);
      assert.equal((await deployer.http.get(`/v2/${repository}/manifests/v1`).set('X-Request-Id', 'allowed-pull-1')).status, 200);
      manifestPull = await lastRow(server.db, { request_id: 'allowed-pull-1' });
      const layer = layerOf(second).digest;
      assert.equal((await deployer.getBytes(`/v2/${repository}/blobs/${layer}`, { 'X-Request-Id': 'allowed-blob-1' })).status, 200);
      blobPull = await lastRow(server.db, { request_id: 'allowed-blob-1' });
      const token = await fetchToken(server.url, { username: 'deployer', password: 'deployer-password' }, [`repository:${repository}:pull`]);
      tokenId = String(decodeJwt(token.token).payload.jti);
      const response = await new RegistryClient(server.url, null).http.get(`/v2/${repository}/manifests/${second.digest}`).set('Authorization', bearerAuthorization(token.token)).set('X-Request-Id', 'token-pull-1');
      assert.equal(response.status, 200);
      tokenPull = await lastRow(server.db, { request_id: 'token-pull-1' });
    });

    test('a decision records its comment as the reason', async () => {
      const target = uniqueRepository('audited/rejected');
      const image = await admin.pushImage(target, 'v1');
      await decideOk(server, reviewers.qa, { repository: target, digest: image.digest, role: 'qa', decision: 'reject', comment: 'fails the smoke tests' });
      const row = await lastRow(server.db, { action: 'certification.decision', digest: image.digest });
      assert.equal(row?.reason, 'fails the smoke tests');
    });

    test('each approval is recorded with the role and the resulting state', async () => {
      const rows = (await rowsOf(server.db, repository)).filter((row) => row.action === 'certification.decision');
      assert.deepEqual(rows.map((row) => [row.details.role, row.certification_state]), [['it', 'pending'], ['security', 'pending'], ['qa', 'certified']]);
    });

    test('an allowed manifest pull is recorded as allowed', () => {
      assert.deepEqual([manifestPull?.action, manifestPull?.decision], ['manifest.pull', 'allowed']);
    });

    test('an allowed pull records the certification state and the policy', () => {
      assert.deepEqual([manifestPull?.certification_state, manifestPull?.policy], ['certified', 'default']);
    });

    test('an allowed manifest pull records the tag, digest, media type and size', () => {
      assert.deepEqual([manifestPull?.reference, manifestPull?.digest, manifestPull?.media_type, manifestPull?.bytes], ['v1', second.digest, second.mediaType, second.size]);
    });

    test('a blob pull is recorded with its size', () => {
      assert.deepEqual([blobPull?.action, blobPull?.decision, blobPull?.bytes], ['blob.pull', 'allowed', layerOf(second).size]);
    });

    test('a pull with a token records the token id', () => {
      assert.equal(tokenPull?.token_id, tokenId);
    });

    test('the token issue is recorded with its id', async () => {
      const row = await lastRow(server.db, { action: 'auth.token', token_id: tokenId });
      assert.equal(row?.actor_subject, 'deployer');
    });

    test('a revocation is recorded and later pulls are denied', async () => {
      const response = await postRevocation(server, reviewers.security, { repository, digest: second.digest, reason: 'leaked key' });
      assert.equal(response.status, 201);
      const revocation = await lastRow(server.db, { action: 'certification.revocation', digest: second.digest });
      assert.deepEqual([revocation?.reason, revocation?.certification_state], ['leaked key', 'revoked']);
    });

    test('a pull after the revocation is recorded as denied in state revoked', async () => {
      assertOciError(await deployer.http.get(`/v2/${repository}/manifests/v1`).set('X-Request-Id', 'after-revoke-1'), 403, 'DENIED');
      const row = await lastRow(server.db, { request_id: 'after-revoke-1' });
      assert.deepEqual([row?.decision, row?.certification_state], ['denied', 'revoked']);
    });

    test('the trail verifies after the session', async () => {
      assert.equal((await verifyChain(server.db)).problem, null);
    });
  });

  describe('a pull without a grant', () => {
    let row: Row | undefined;

    before(async () => {
      const stranger = new RegistryClient(server.url, await createTestUser(server.db, 'stranger'));
      assertOciError(await stranger.http.get(`/v2/${repository}/manifests/v1`).set('X-Request-Id', 'no-grant-pull-1'), 403, 'DENIED');
      row = await lastRow(server.db, { request_id: 'no-grant-pull-1', action: 'pull.denied' });
    });

    test('is recorded as denied', () => {
      assert.equal(row?.decision, 'denied');
    });

    test('records the missing permission as the reason', () => {
      assert.match(row?.reason ?? '', /stranger lacks the pull/);
    });

    test('records the tag it asked for', () => {
      assert.deepEqual([row?.repository, row?.reference, row?.digest], [repository, 'v1', null]);
    });
  });

  describe('HEAD requests', () => {
    test('a HEAD by tag records the digest it resolved', async () => {
      assert.equal((await admin.http.head(`/v2/${repository}/manifests/v1`).set('X-Request-Id', 'head-tag-1')).status, 200);
      const row = await lastRow(server.db, { request_id: 'head-tag-1' });
      assert.deepEqual([row?.action, row?.reference, row?.digest, row?.decision], ['manifest.head', 'v1', second.digest, 'allowed']);
    });

    test('a HEAD by digest records nothing', async () => {
      assert.equal((await admin.http.head(`/v2/${repository}/manifests/${second.digest}`).set('X-Request-Id', 'head-digest-1')).status, 200);
      assert.equal(await lastRow(server.db, { request_id: 'head-digest-1', action: 'manifest.head' }), undefined);
    });
  });

  describe('user agents', () => {
    test('a UTF-8 user agent is stored as sent', async () => {
      const sent = Buffer.from('büro-client/1.0 ✓', 'utf8').toString('latin1');
      await admin.http.get(`/v2/${repository}/manifests/${first.digest}`).set('User-Agent', sent).set('X-Request-Id', 'utf8-agent-1');
      const row = await lastRow(server.db, { request_id: 'utf8-agent-1', action: 'manifest.pull' });
      assert.equal(row?.user_agent, 'büro-client/1.0 ✓');
    });
  });

  describe('logins', () => {
    test('a malformed refresh token is recorded as a failed login', async () => {
      const response = await postTokenForm(server.url, { grant_type: 'refresh_token', refresh_token: 'not-a-token', service: 'portcullis', client_id: 'audit-test' });
      assert.equal(response.status, 401);
      const row: Row | undefined = await server.db('audit_events').where({ action: 'auth.login' }).whereLike('reason', 'invalid refresh token%').orderBy('seq', 'desc').first('*');
      assert.deepEqual([row?.action, row?.actor_kind, row?.details.success], ['auth.login', 'anonymous', false]);
    });

    test('a failed login is recorded with the name tried', async () => {
      const response = await new RegistryClient(server.url, { username: 'deployer', password: 'wrong' }).http.get('/v2/').set('X-Request-Id', 'bad-login-1');
      assert.equal(response.status, 401);
      const row = await lastRow(server.db, { request_id: 'bad-login-1' });
      assert.deepEqual([row?.action, row?.actor_subject, row?.details.success], ['auth.login', 'deployer', false]);
    });
  });

  describe('when the trail cannot be written', () => {
    test('a pull fails with 503 UNAVAILABLE', async () => {
      const restore = await breakTrail(server.db);
      try {
        assertOciError(await admin.http.get(`/v2/${repository}/manifests/${first.digest}`), 503, 'UNAVAILABLE');
      } finally {
        await restore();
      }
    });

    test('a manifest push fails with 503 and stores nothing', async () => {
      const target = uniqueRepository('audited/refused');
      const config = await admin.pushImage(target, 'ok');
      const restore = await breakTrail(server.db);
      let status: number;
      try {
        status = (await admin.putManifest(target, 'refused', config)).status;
      } finally {
        await restore();
      }
      assert.equal(status, 503);
      assert.equal((await admin.http.get(`/v2/${target}/manifests/refused`)).status, 404);
    });

    test('a certification decision fails with 503 and is not stored', async () => {
      const reviewers = await createReviewers(server, 'refused-reviewer');
      const target = uniqueRepository('audited/refused-cert');
      const image = await admin.pushImage(target, 'v1');
      const restore = await breakTrail(server.db);
      let status: number;
      try {
        status = (await new RegistryClient(server.url, null).http.post('/api/v1/certifications').set('Authorization', reviewers.it).send({ repository: target, digest: image.digest, role: 'it', decision: 'approve' })).status;
      } finally {
        await restore();
      }
      assert.deepEqual([status, (await server.db('certification_decisions').where({ digest: image.digest })).length], [503, 0]);
    });
  });

  describe('when the chain head stays locked', () => {
    test('a pull fails with 503 after the lock timeout', async () => {
      const impatient = await startTestServer({ shareWith: server, audit: { lockTimeoutMs: 200 } });
      const client = new RegistryClient(impatient.url, impatient.admin);
      let release: () => void = () => undefined;
      const lockReleased = new Promise<void>((resolve) => (release = resolve));
      const holding = server.db.transaction(async (trx) => {
        await trx.raw('lock table audit_chain in access exclusive mode');
        await lockReleased;
      });
      try {
        // The Basic login is recorded before the pull, and its event meets the lock first.
        assertOciError(await client.http.get(`/v2/${repository}/manifests/${first.digest}`), 503, 'UNAVAILABLE');
      } finally {
        release();
        await holding;
        await impatient.close();
      }
    });
  });

  describe('with pulls served when the trail cannot be written', () => {
    let open: TestServer;
    let openAdmin: RegistryClient;

    before(async () => {
      open = await startTestServer({ shareWith: server, audit: { failOpenPulls: true } });
      openAdmin = new RegistryClient(open.url, open.admin);
    });

    after(async () => {
      await open.close();
    });

    test('pull served, event written later', async () => {
      const restore = await breakTrail(server.db);
      let status: number;
      try {
        status = (await openAdmin.http.get(`/v2/${repository}/manifests/${first.digest}`).set('X-Request-Id', 'open-pull-1')).status;
      } finally {
        await restore();
      }
      await open.auditWriter?.drain();
      const row = await lastRow(server.db, { request_id: 'open-pull-1' });
      assert.deepEqual([status, row?.action, typeof row?.details.observedAt], [200, 'manifest.pull', 'string']);
    });

    test('a push still fails closed with 503', async () => {
      const target = uniqueRepository('audited/open-refused');
      const image = await openAdmin.pushImage(target, 'ok');
      const restore = await breakTrail(server.db);
      let status: number;
      try {
        status = (await openAdmin.putManifest(target, 'refused', image)).status;
      } finally {
        await restore();
      }
      assert.equal(status, 503);
    });
  });
});
