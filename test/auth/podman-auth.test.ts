/**
 * Token authentication with podman: `podman login` stores the credentials,
 * and `podman push` and `podman pull` get their tokens from /token after the
 * Bearer challenge. Skipped when podman is not installed. Every podman call
 * goes to the test server on 127.0.0.1 only (see test/helpers/podman.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { certify } from '../helpers/certification.js';
import { buildSingleLayerImage, type ImageFixture } from '../helpers/images.js';
import { isPodmanAvailable, PodmanError, PodmanSession } from '../helpers/podman.js';
import { createTestRobot, createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';

const podmanMissing = (await isPodmanAvailable()) ? false : 'podman is not installed';

/** Returns whether an error is a failed podman run whose stderr matches. */
function failedWith(pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof PodmanError, `expected a PodmanError, got ${String(error)}`);
    assert.match(error.stderr, pattern);
    return true;
  };
}

describe('podman login, push and pull', { skip: podmanMissing }, () => {
  let server: TestServer;
  let podman: PodmanSession;
  let fixture: ImageFixture;
  let localImage: string;
  let pushedDigest: string;

  before(async () => {
    server = await startTestServer();
    await createTestUser(server.db, 'developer');
    await grantToUser(server.db, 'developer', 'team-a/**', ['pull', 'push']);
    await createTestRobot(server.db, 'ci-team-a', [{ pattern: 'team-a/*', permissions: ['push'] }]);
    fixture = await buildSingleLayerImage();
    podman = await PodmanSession.create();
    localImage = await podman.pullLayout(fixture.path, fixture.reference ?? 'latest');
  });
  after(async () => {
    await podman.close();
    await server.close();
  });

  test('login with a wrong password fails', async () => {
    await assert.rejects(podman.login(server.host, 'developer', 'wrong-password'), failedWith(/invalid username\/password|unauthorized/i));
  });

  test('push without a login fails with 401', async () => {
    await assert.rejects(podman.push(localImage, `docker://${server.host}/team-a/podman-app:v1`), failedWith(/unauthorized|authentication required/i));
  });

  test('login with the password succeeds', async () => {
    await podman.login(server.host, 'developer', 'developer-password');
  });

  test('push after login stores the manifest', async () => {
    pushedDigest = await podman.push(localImage, `docker://${server.host}/team-a/podman-app:v1`);
    const stored = await server.db('manifests').where({ digest: pushedDigest }).first('id');
    assert.ok(stored, `manifest ${pushedDigest} was not stored`);
  });

  test('pull after login returns the pushed digest', async () => {
    await certify(server.db, 'team-a/podman-app', pushedDigest);
    const repoDigests = await podman.pull(`docker://${server.host}/team-a/podman-app:v1`);
    assert.ok(repoDigests.includes(`${server.host}/team-a/podman-app@${pushedDigest}`), `repository digests: ${repoDigests.join(', ')}`);
  });

  test('push outside the grant fails with 403', async () => {
    await assert.rejects(podman.push(localImage, `docker://${server.host}/team-b/podman-app:v1`), failedWith(/denied|403/i));
  });

  test('pull after logout fails with 401', async () => {
    await podman.logout(server.host);
    await assert.rejects(podman.pull(`docker://${server.host}/team-a/podman-app:v1`), failedWith(/unauthorized|authentication required/i));
  });

  test('robot with only push logs in and pushes', async () => {
    await podman.login(server.host, 'robot$ci-team-a', 'ci-team-a-secret');
    const digest = await podman.push(localImage, `docker://${server.host}/team-a/podman-robot-app:v1`);
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  });
});
