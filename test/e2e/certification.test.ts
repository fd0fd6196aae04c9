/**
 * Certification end to end with skopeo: a developer robot pushes, a
 * deployer is denied until IT, Security and QA approved the digest, and
 * denied again after a revocation, while a QA reviewer with
 * pull-uncertified pulls pending images. Approvals and the revocation go
 * through the REST API; the revocation is made on a second gateway instance
 * that shares the database and must deny the next pull on the first.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildSingleLayerImage, createScratchDirectory, type ImageFixture } from '../helpers/images.js';
import { basicAuthorization, createTestRobot, createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';
import { copy, isSkopeoAvailable, SkopeoError } from '../helpers/skopeo.js';
import { approveAll, createReviewers, postRevocation, type Reviewers } from '../helpers/certification-api.js';

const skip = (await isSkopeoAvailable()) ? false : 'skopeo is not installed';

describe('certification with skopeo', { skip }, () => {
  let server: TestServer;
  let secondInstance: TestServer;
  let reviewers: Reviewers;
  let fixture: ImageFixture;
  let developer = '';
  let deployerLogin = { username: '', password: '' };
  let deployer = '';
  let reviewer = '';
  let digest = '';
  let scratch = '';
  let pulls = 0;

  const image = (repository: string) => `docker://${server.host}/${repository}:v1`;

  /** Pulls into a new OCI layout and returns the digest skopeo wrote. */
  const pull = async (repository: string, creds: string): Promise<string> => {
    pulls += 1;
    const result = await copy(image(repository), `oci:${join(scratch, `pull-${pulls}`)}:v1`, { preserveDigests: true, creds });
    return result.manifestDigest;
  };

  /** Asserts that a pull fails with skopeo's report of the DENIED error and returns that stderr. */
  const assertPullDenied = async (repository: string, creds: string): Promise<string> => {
    const error = await pull(repository, creds).then(
      () => assert.fail('the pull succeeded'),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof SkopeoError, String(error));
    assert.match(error.stderr, /denied/i);
    return error.stderr;
  };

  before(async () => {
    server = await startTestServer();
    secondInstance = await startTestServer({ shareWith: server });
    reviewers = await createReviewers(server, 'e2e');
    fixture = await buildSingleLayerImage();
    scratch = await createScratchDirectory('certification');

    const robot = await createTestRobot(server.db, 'ci-shop', [{ pattern: 'shop/**', permissions: ['pull', 'push'] }]);
    developer = `${robot.username}:${robot.password}`;
    deployerLogin = await createTestUser(server.db, 'deployer');
    await grantToUser(server.db, deployerLogin.username, 'shop/**', ['pull']);
    deployer = `${deployerLogin.username}:${deployerLogin.password}`;
    const reviewerLogin = await createTestUser(server.db, 'qa-reviewer', ['qa']);
    await grantToUser(server.db, reviewerLogin.username, 'shop/**', ['pull-uncertified']);
    reviewer = `${reviewerLogin.username}:${reviewerLogin.password}`;

    digest = (await copy(fixture.imageName, image('shop/app'), { preserveDigests: true, creds: developer })).manifestDigest;
    await copy(fixture.imageName, image('shop/pending'), { preserveDigests: true, creds: developer });
  });
  after(async () => {
    await secondInstance?.close();
    await server?.close();
  });

  test('developer robot pushed the fixture digest', () => {
    assert.equal(digest, fixture.manifest.digest);
  });

  test('deployer pull of the pending image is denied with the reason', async () => {
    const stderr = await assertPullDenied('shop/app', deployer);
    // skopeo 1.9.3 prints the error as a logrus msg field, which escapes the quotes in it.
    assert.match(stderr, /denied: shop\/app@sha256:[0-9a-f]{64} is not certified: waiting for it, security, qa \(policy \\?"default\\?"\)/);
    assert.match(stderr, /GET \/api\/v1\/certifications\/status\?repository=shop\/app&reference=sha256:/);
  });

  test('QA reviewer with pull-uncertified pulls the pending image', async () => {
    assert.equal(await pull('shop/pending', reviewer), fixture.manifest.digest);
  });

  describe('after approval by it, security and qa', () => {
    before(async () => {
      await approveAll(server, reviewers, 'shop/app', digest);
    });

    test('deployer pulls the certified image', async () => {
      assert.equal(await pull('shop/app', deployer), fixture.manifest.digest);
    });

    test('the same digest in another repository stays denied', async () => {
      await assertPullDenied('shop/pending', deployer);
    });
  });

  describe('after revocation on the second instance', () => {
    let revokedAt = 0;
    before(async () => {
      const response = await postRevocation(secondInstance, reviewers.security, { repository: 'shop/app', digest, reason: 'CVE found in a layer' });
      assert.equal(response.status, 201, response.text);
      revokedAt = Date.now();
    });

    test('first instance denies the next manifest request within a second', async () => {
      const response = await fetch(`${server.url}/v2/shop/app/manifests/v1`, { headers: { Authorization: basicAuthorization(deployerLogin) } });
      await response.arrayBuffer();
      assert.equal(response.status, 403);
      assert.ok(Date.now() - revokedAt < 1000, `the denial came ${Date.now() - revokedAt} ms after the revocation`);
    });

    test('deployer pull is denied as revoked', async () => {
      const stderr = await assertPullDenied('shop/app', deployer);
      assert.match(stderr, /its certification was revoked/);
    });

    test('QA reviewer still pulls the revoked image', async () => {
      assert.equal(await pull('shop/app', reviewer), fixture.manifest.digest);
    });
  });
});
