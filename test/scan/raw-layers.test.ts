import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { blobOf, emptyConfigBlob, ociImageManifest, RegistryClient, uniqueRepository } from '../helpers/registry-client.js';
import { waitForScanState } from '../helpers/scan-images.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** Pushes an artifact whose one layer is a plain file, not an archive, and returns its digest. */
async function pushFileArtifact(client: RegistryClient, repository: string, content: string, mediaType: string, title?: string): Promise<string> {
  const config = emptyConfigBlob();
  const file = blobOf(content, mediaType);
  await client.pushBlobs(repository, [config, file]);
  const layer = title === undefined ? file.descriptor : { ...file.descriptor, annotations: { 'org.opencontainers.image.title': title } };
  const manifest = ociImageManifest(config.descriptor, [layer], { artifactType: 'application/vnd.example.files' });
  return (await client.pushManifest(repository, manifest.digest, manifest)).digest;
}

describe('layers that are plain files', () => {
  let server: TestServer;
  let client: RegistryClient;

  before(async () => {
    server = await startTestServer({ jobs: true });
    client = new RegistryClient(server.url, server.admin);
  });

  after(async () => {
    await server.close();
  });

  test('a key file is reported under its title', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'sec1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const digest = await pushFileArtifact(client, uniqueRepository('raw/key'), privateKey, 'application/x-pem-file', 'deploy/id_ec.pem');
    assert.equal(await waitForScanState(server.db, digest, ['clean', 'findings', 'failed']), 'findings');
    const findings: Array<{ detector: string; path: string }> = await server.db('scan_findings').where({ digest }).select('detector', 'path');
    assert.deepEqual(findings, [{ detector: 'private-key-ec', path: 'deploy/id_ec.pem' }]);
  });

  test('a plain file declared as a tar layer is scanned, not failed', async () => {
    const digest = await pushFileArtifact(client, uniqueRepository('raw/notes'), 'release notes\nnothing secret here\n', 'application/vnd.oci.image.layer.v1.tar');
    assert.equal(await waitForScanState(server.db, digest, ['clean', 'findings', 'failed']), 'clean');
  });
});
