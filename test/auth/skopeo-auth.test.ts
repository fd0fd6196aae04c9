/**
 * Token authentication with a real client: skopeo pushes and pulls with
 * `--dest-creds` and `--src-creds` as a user and as a robot, fetching its
 * tokens from /token after the Bearer challenge, and fails with bad
 * credentials or without a grant. Every skopeo call goes to the test server
 * on 127.0.0.1 only (see test/helpers/skopeo.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RegistryEvent, RegistryEventSink } from '../../src/audit/registry-events.js';
import { certify } from '../helpers/certification.js';
import { buildSingleLayerImage, createScratchDirectory, readLayoutDescriptor, type ImageFixture } from '../helpers/images.js';
import { createTestRobot, createTestUser, grantToUser, startTestServer, type TestServer } from '../helpers/server.js';
import { copy, isSkopeoAvailable, SkopeoError } from '../helpers/skopeo.js';

const TAG = 'v1';
const skopeoMissing = (await isSkopeoAvailable()) ? false : 'skopeo is not installed';

/** Returns whether an error is a failed skopeo run whose output reports the status. */
function failedWith(pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof SkopeoError, `expected a SkopeoError, got ${String(error)}`);
    assert.match(error.stderr, pattern);
    return true;
  };
}

describe('skopeo with token authentication', { skip: skopeoMissing }, () => {
  const events: RegistryEvent[] = [];
  const sink: RegistryEventSink = {
    record: async (_context, event) => {
      events.push(event);
    },
  };
  let server: TestServer;
  let fixture: ImageFixture;
  let userCreds: string;
  let robotCreds: string;
  let pushOnlyCreds: string;
  let readerCreds: string;

  before(async () => {
    server = await startTestServer({ events: sink });
    fixture = await buildSingleLayerImage();
    const user = await createTestUser(server.db, 'developer');
    await grantToUser(server.db, 'developer', 'team-a/**', ['pull', 'push']);
    userCreds = `${user.username}:${user.password}`;
    const robot = await createTestRobot(server.db, 'ci-team-a', [{ pattern: 'team-a/*', permissions: ['pull', 'push'] }]);
    robotCreds = `${robot.username}:${robot.password}`;
    const pushOnly = await createTestRobot(server.db, 'push-only', [{ pattern: 'team-a/*', permissions: ['push'] }]);
    pushOnlyCreds = `${pushOnly.username}:${pushOnly.password}`;
    const reader = await createTestUser(server.db, 'reader');
    await grantToUser(server.db, 'reader', 'team-b/**', ['pull']);
    readerCreds = `${reader.username}:${reader.password}`;
  });
  after(() => server.close());

  const reference = (repository: string) => `docker://${server.host}/${repository}:${TAG}`;

  /** Pulls an image into a new OCI layout and returns the digest of the pulled manifest. */
  async function pull(repository: string, creds: string): Promise<string> {
    const destination = await createScratchDirectory('skopeo-auth-pull');
    await copy(reference(repository), `oci:${destination}:${TAG}`, { preserveDigests: true, creds });
    return (await readLayoutDescriptor(destination, TAG)).digest;
  }

  test('user with a grant pushes with --dest-creds', async () => {
    const result = await copy(fixture.imageName, reference('team-a/user-app'), { preserveDigests: true, creds: userCreds });
    assert.equal(result.manifestDigest, fixture.manifest.digest);
  });

  test('push fetched a token from /token for the user', () => {
    const token = events.find((event) => event.action === 'auth.token' && event.subject === 'developer');
    assert.deepEqual(token?.action === 'auth.token' ? token.access : undefined, [{ type: 'repository', name: 'team-a/user-app', actions: ['pull', 'push'] }]);
  });

  test('robot pushes with robot$name:secret', async () => {
    const result = await copy(fixture.imageName, reference('team-a/robot-app'), { preserveDigests: true, creds: robotCreds });
    assert.equal(result.manifestDigest, fixture.manifest.digest);
  });

  test('robot with only push pushes', async () => {
    const result = await copy(fixture.imageName, reference('team-a/push-only-app'), { preserveDigests: true, creds: pushOnlyCreds });
    assert.equal(result.manifestDigest, fixture.manifest.digest);
  });

  test('user pulls with --src-creds', async () => {
    await certify(server.db, 'team-a/user-app', fixture.manifest.digest);
    assert.equal(await pull('team-a/user-app', userCreds), fixture.manifest.digest);
  });

  test('robot pulls with --src-creds', async () => {
    await certify(server.db, 'team-a/robot-app', fixture.manifest.digest);
    assert.equal(await pull('team-a/robot-app', robotCreds), fixture.manifest.digest);
  });

  test('push with a wrong password fails with 401', async () => {
    await assert.rejects(copy(fixture.imageName, reference('team-a/wrong-password'), { creds: 'developer:wrong-password' }), failedWith(/401|unauthorized/i));
  });

  test('push with a wrong password stores nothing', async () => {
    const repository = await server.db('repositories').where({ name: 'team-a/wrong-password' }).first('id');
    assert.equal(repository, undefined);
  });

  test('push with an unknown robot fails with 401', async () => {
    await assert.rejects(copy(fixture.imageName, reference('team-a/unknown-robot'), { creds: 'robot$nobody:secret' }), failedWith(/401|unauthorized/i));
  });

  test('robot push outside its namespace fails with 403', async () => {
    await assert.rejects(copy(fixture.imageName, reference('team-b/robot-app'), { creds: robotCreds }), failedWith(/403|denied/i));
  });

  test('robot push two levels below its namespace fails with 403', async () => {
    await assert.rejects(copy(fixture.imageName, reference('team-a/nested/app'), { creds: robotCreds }), failedWith(/403|denied/i));
  });

  test('pull with a wrong password fails with 401', async () => {
    await assert.rejects(pull('team-a/user-app', 'developer:wrong-password'), failedWith(/401|unauthorized/i));
  });

  test('pull without a grant fails with 403', async () => {
    await assert.rejects(pull('team-a/user-app', readerCreds), failedWith(/403|denied/i));
  });

  test('pull without credentials fails with 401', async () => {
    const destination = await createScratchDirectory('skopeo-auth-anonymous');
    await assert.rejects(copy(reference('team-a/user-app'), `oci:${destination}:${TAG}`), failedWith(/401|unauthorized/i));
  });
});
