/**
 * Secret scanning end to end: images built in the test are pushed with
 * skopeo, a scan worker of the gateway scans them, and the findings, the
 * Security gate and the waivers are checked through the REST API.
 *
 * The secrets image has a .env with a fake AWS key pair. It also has AWS's
 * documented example pair, which must be ignored, an OpenSSH private key
 * that a later layer deletes with a whiteout, a password in Env and a token
 * in a RUN line of the history. The clean image is made of ordinary system
 * files: part of /usr/share and /etc/ssl/certs.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { apiRequest } from '../helpers/api.js';
import { createReviewers, decideOk, postDecision, type Reviewers } from '../helpers/certification-api.js';
import { CollectingEventSink } from '../helpers/events.js';
import { createScratchDirectory, removeImageFixtures } from '../helpers/images.js';
import { filesUnder, generateSecrets, imageConfig, secretsImage, tarGzLayer, waitForScanState, writeOciLayout, type PlantedSecrets } from '../helpers/scan-images.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { copy, isSkopeoAvailable } from '../helpers/skopeo.js';

const skip = (await isSkopeoAvailable()) ? false : 'skopeo is not installed';

/** Largest amount of /usr/share copied into the clean image, in bytes. */
const CLEAN_IMAGE_SHARE_BYTES = 24 * 1024 * 1024;

interface FindingBody {
  id: string;
  digest: string;
  layer: string;
  path: string | null;
  detector: string;
  preview: string;
  waived: boolean;
}

describe('secret scanning with skopeo', { skip }, () => {
  let server: TestServer;
  let reviewers: Reviewers;
  let secrets: PlantedSecrets;
  let layers: string[] = [];
  let secretsDigest = '';
  let cleanDigest = '';
  let findings: FindingBody[] = [];
  let scanText = '';
  const logLines: string[] = [];
  const events = new CollectingEventSink();

  before(async () => {
    const logStream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logLines.push(chunk.toString('utf8'));
        callback();
      },
    });
    server = await startTestServer({
      jobs: true,
      events,
      logger: pino({ level: 'trace' }, logStream),
      scanSettings: { job: { retryLimit: 3, retryDelaySeconds: 1, expireInSeconds: 300, concurrency: 2 }, lease: { leaseSeconds: 30, renewSeconds: 5 } },
    });
    reviewers = await createReviewers(server);
    const creds = `${server.admin.username}:${server.admin.password}`;

    secrets = await generateSecrets();
    const image = await secretsImage(secrets);
    const secretsLayout = await writeOciLayout(await createScratchDirectory('scan-secrets'), 'v1', image.config, image.layers);
    secretsDigest = (await copy(`oci:${secretsLayout}:v1`, `docker://${server.host}/scan/secrets:v1`, { preserveDigests: true, creds })).manifestDigest;
    const manifest = JSON.parse((await server.db('manifests').where({ digest: secretsDigest }).first('content')).content.toString()) as { layers: Array<{ digest: string }> };
    layers = manifest.layers.map((layer) => layer.digest);

    const systemFiles = await filesUnder(['/usr/share', '/etc/ssl/certs'], CLEAN_IMAGE_SHARE_BYTES);
    const cleanLayout = await writeOciLayout(await createScratchDirectory('scan-clean'), 'v1', imageConfig({ history: ['COPY /usr/share /usr/share', 'COPY /etc/ssl/certs /etc/ssl/certs'] }), [await tarGzLayer(systemFiles)]);
    cleanDigest = (await copy(`oci:${cleanLayout}:v1`, `docker://${server.host}/scan/clean:v1`, { preserveDigests: true, creds })).manifestDigest;

    await waitForScanState(server.db, secretsDigest, ['clean', 'findings', 'failed'], 120_000);
    await waitForScanState(server.db, cleanDigest, ['clean', 'findings', 'failed'], 120_000);
    const response = await apiRequest(server, 'get', `/api/v1/scans?repository=scan/secrets&digest=${secretsDigest}`, reviewers.security);
    scanText = response.text;
    findings = (response.body as { findings: FindingBody[] }).findings;
  });
  after(async () => {
    await server.close();
    await removeImageFixtures();
  });

  test('the secrets image ends in state findings', async () => {
    const row = await server.db('scans').where({ digest: secretsDigest }).first('state');
    assert.equal(row.state, 'findings');
  });

  test('the secrets image yields exactly the planted findings', () => {
    const found = findings.map((finding) => `${finding.detector} ${finding.layer === 'config' ? 'config' : `layer${layers.indexOf(finding.layer) + 1}`} ${finding.path}`).sort();
    assert.deepEqual(found, [
      'aws-access-key layer1 app/.env',
      'aws-secret-key layer1 app/.env',
      'config-env-secret config Env[1]',
      'github-token config history[1].created_by',
      'private-key-openssh layer1 home/app/.ssh/id_ed25519',
    ]);
  });

  test('no secret appears in the API response', () => {
    for (const secret of Object.values(secrets)) assert.ok(!scanText.includes(secret.trim()), 'a planted secret is in the response');
  });

  test('no secret appears in the logs', () => {
    const logs = logLines.join('');
    for (const secret of Object.values(secrets)) assert.ok(!logs.includes(secret.trim().split('\n')[1] ?? secret), 'a planted secret is in the logs');
  });

  test('every preview is redacted', () => {
    for (const finding of findings) assert.match(finding.preview, /…/, `${finding.detector} preview is not redacted`);
  });

  test('every preview hash is keyed', () => {
    for (const finding of findings) assert.match(finding.preview, /\(hmac:[0-9a-f]{12}\)$/, `${finding.detector} preview shows an unkeyed hash`);
  });

  test('the clean image yields no finding', async () => {
    const response = await apiRequest(server, 'get', `/api/v1/scans?repository=scan/clean&digest=${cleanDigest}`, reviewers.security);
    assert.deepEqual(
      { state: response.body.state, findings: response.body.findings },
      { state: 'clean', findings: [] },
    );
  });

  test('Security approval is refused while findings are open', async () => {
    const response = await postDecision(server, reviewers.security, { repository: 'scan/secrets', digest: secretsDigest, role: 'security' });
    assert.equal(response.status, 409);
  });

  test('Security approval is accepted and recorded after every waiver', async () => {
    for (const finding of findings) {
      const response = await apiRequest(server, 'post', `/api/v1/scans/findings/${finding.id}/waivers`, reviewers.security).send({ reason: 'fake secret planted by the test' });
      assert.equal(response.status, 201, response.text);
    }
    await decideOk(server, reviewers.security, { repository: 'scan/secrets', digest: secretsDigest, role: 'security' });
    assert.deepEqual(
      {
        waivers: events.ofAction('scan.waiver').filter((event) => event.digest === secretsDigest).length,
        decisions: events.ofAction('certification.decision').filter((event) => event.digest === secretsDigest && event.decision === 'approve').length,
      },
      { waivers: findings.length, decisions: 1 },
    );
  });
});
