import { after, before, describe, test } from 'node:test';
import { apiRequest } from '../helpers/api.js';
import { approveAll, createReviewers, decideOk, getStatus, postDecision, postRevocation, pushImage, type Reviewers } from '../helpers/certification-api.js';
import { uniqueRepository } from '../helpers/registry-client.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { assertDocumented } from '../helpers/openapi.js';

describe('openapi.yaml matches real certification and policy responses', () => {
  let server: TestServer;
  let reviewers: Reviewers;
  let repository: string;
  let digest: string;

  before(async () => {
    server = await startTestServer();
    reviewers = await createReviewers(server);
    repository = uniqueRepository('documented');
    digest = await pushImage(server, repository, 'v1');
  });
  after(() => server.close());

  test('POST /api/v1/certifications 201', async () => {
    const response = await postDecision(server, reviewers.it, { repository, digest, role: 'it', comment: 'ok', evidence: { run: 1 } });
    assertDocumented('/api/v1/certifications', 'post', response);
  });

  test('POST /api/v1/certifications 400', async () => {
    const response = await postDecision(server, reviewers.it, { repository, digest: 'v1', role: 'it' });
    assertDocumented('/api/v1/certifications', 'post', response);
  });

  test('POST /api/v1/certifications 401', async () => {
    const response = await postDecision(server, undefined, { repository, digest, role: 'it' });
    assertDocumented('/api/v1/certifications', 'post', response);
  });

  test('POST /api/v1/certifications 403', async () => {
    const response = await postDecision(server, reviewers.it, { repository, digest, role: 'qa' });
    assertDocumented('/api/v1/certifications', 'post', response);
  });

  test('POST /api/v1/certifications 404', async () => {
    const response = await postDecision(server, reviewers.it, { repository, digest: `sha256:${'0'.repeat(64)}`, role: 'it' });
    assertDocumented('/api/v1/certifications', 'post', response);
  });

  test('GET /api/v1/certifications/status 200 by tag', async () => {
    const response = await getStatus(server, reviewers.qa, repository, 'v1');
    assertDocumented('/api/v1/certifications/status', 'get', response);
  });

  test('GET /api/v1/certifications/status 200 when certified with a validity', async () => {
    await apiRequest(server, 'post', '/api/v1/policies', server.adminAuthorization).send({ name: 'timed', pattern: 'timed/**', requiredRoles: ['it'], validitySeconds: 3600 });
    const timed = uniqueRepository('timed');
    const timedDigest = await pushImage(server, timed);
    await decideOk(server, reviewers.it, { repository: timed, digest: timedDigest, role: 'it' });
    const response = await getStatus(server, reviewers.it, timed, timedDigest);
    assertDocumented('/api/v1/certifications/status', 'get', response);
  });

  test('GET /api/v1/certifications/status 404', async () => {
    const response = await getStatus(server, reviewers.qa, repository, 'missing');
    assertDocumented('/api/v1/certifications/status', 'get', response);
  });

  test('POST /api/v1/certifications/revocations 201', async () => {
    const revoked = uniqueRepository('documented');
    const revokedDigest = await pushImage(server, revoked);
    await approveAll(server, reviewers, revoked, revokedDigest);
    const response = await postRevocation(server, reviewers.security, { repository: revoked, digest: revokedDigest });
    assertDocumented('/api/v1/certifications/revocations', 'post', response);
  });

  test('POST /api/v1/certifications/revocations 409', async () => {
    const untouched = uniqueRepository('documented');
    const untouchedDigest = await pushImage(server, untouched);
    const response = await postRevocation(server, reviewers.security, { repository: untouched, digest: untouchedDigest });
    assertDocumented('/api/v1/certifications/revocations', 'post', response);
  });

  test('GET /api/v1/certifications/queue 200', async () => {
    const response = await apiRequest(server, 'get', '/api/v1/certifications/queue?role=qa&limit=1', reviewers.qa);
    assertDocumented('/api/v1/certifications/queue', 'get', response);
  });

  test('GET /api/v1/certifications/queue 403', async () => {
    const response = await apiRequest(server, 'get', '/api/v1/certifications/queue?role=qa', reviewers.it);
    assertDocumented('/api/v1/certifications/queue', 'get', response);
  });

  test('GET /api/v1/certifications/history 200', async () => {
    const history = uniqueRepository('documented');
    const historyDigest = await pushImage(server, history);
    await approveAll(server, reviewers, history, historyDigest);
    await postRevocation(server, reviewers.it, { repository: history, digest: historyDigest });
    const response = await apiRequest(server, 'get', `/api/v1/certifications/history?${new URLSearchParams({ repository: history, digest: historyDigest }).toString()}`, reviewers.it);
    assertDocumented('/api/v1/certifications/history', 'get', response);
  });

  test('GET /api/v1/policies 200', async () => {
    const response = await apiRequest(server, 'get', '/api/v1/policies', server.adminAuthorization);
    assertDocumented('/api/v1/policies', 'get', response);
  });

  test('POST /api/v1/policies 201', async () => {
    const response = await apiRequest(server, 'post', '/api/v1/policies', server.adminAuthorization).send({ name: 'documented', pattern: 'documented/**', requiredRoles: ['qa'], uncertifiedGroups: ['qa'], mode: 'dry-run' });
    assertDocumented('/api/v1/policies', 'post', response);
  });

  test('POST /api/v1/policies 400', async () => {
    const response = await apiRequest(server, 'post', '/api/v1/policies', server.adminAuthorization).send({ name: 'bad', pattern: 'a/*b', requiredRoles: [] });
    assertDocumented('/api/v1/policies', 'post', response);
  });

  test('POST /api/v1/policies 403', async () => {
    const response = await apiRequest(server, 'post', '/api/v1/policies', reviewers.it).send({ name: 'nope', pattern: 'nope/**', requiredRoles: ['it'] });
    assertDocumented('/api/v1/policies', 'post', response);
  });

  test('GET /api/v1/policies/{name} 200', async () => {
    const response = await apiRequest(server, 'get', '/api/v1/policies/default', server.adminAuthorization);
    assertDocumented('/api/v1/policies/{name}', 'get', response);
  });

  test('GET /api/v1/policies/{name} 404', async () => {
    const response = await apiRequest(server, 'get', '/api/v1/policies/missing', server.adminAuthorization);
    assertDocumented('/api/v1/policies/{name}', 'get', response);
  });

  test('PATCH /api/v1/policies/{name} 200', async () => {
    const response = await apiRequest(server, 'patch', '/api/v1/policies/default', server.adminAuthorization).send({ validitySeconds: null });
    assertDocumented('/api/v1/policies/{name}', 'patch', response);
  });

  test('DELETE /api/v1/policies/{name} 409', async () => {
    const response = await apiRequest(server, 'delete', '/api/v1/policies/default', server.adminAuthorization);
    assertDocumented('/api/v1/policies/{name}', 'delete', response);
  });

  test('DELETE /api/v1/policies/{name} 204 is documented', async () => {
    await apiRequest(server, 'post', '/api/v1/policies', server.adminAuthorization).send({ name: 'short', pattern: 'short/**', requiredRoles: ['qa'] });
    const response = await apiRequest(server, 'delete', '/api/v1/policies/short', server.adminAuthorization);
    assertDocumented('/api/v1/policies/{name}', 'delete', response);
  });
});
