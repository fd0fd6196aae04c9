import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/config.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

test('empty environment gives embedded defaults', () => {
  const config = loadConfig({});
  assert.equal(config.databaseUrl, null);
  assert.equal(config.storage.driver, 'filesystem');
  assert.equal(config.port, 5000);
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.dataDir, path.resolve('data'));
  assert.equal(config.publicUrl, null);
  assert.deepEqual(config.trustedProxies, []);
});

test('S3 settings select the s3 driver', () => {
  const config = loadConfig({ STORAGE_DRIVER: 's3', S3_BUCKET: 'blobs', S3_ENDPOINT: 'http://127.0.0.1:7480', S3_ACCESS_KEY_ID: 'a', S3_SECRET_ACCESS_KEY: 'b' });
  assert.equal(config.storage.driver, 's3');
  assert.equal(config.storage.driver === 's3' && config.storage.forcePathStyle, true);
});

test('S3_FORCE_PATH_STYLE=false is honoured', () => {
  const config = loadConfig({ STORAGE_DRIVER: 's3', S3_BUCKET: 'blobs', S3_ENDPOINT: 'http://127.0.0.1:7480', S3_FORCE_PATH_STYLE: 'false' });
  assert.equal(config.storage.driver === 's3' && config.storage.forcePathStyle, false);
});

test('PUBLIC_URL loses its trailing slash', () => {
  assert.equal(loadConfig({ PUBLIC_URL: 'https://registry.example.com/' }).publicUrl, 'https://registry.example.com');
});

test('attachment and blocklist defaults apply when unset', () => {
  const config = loadConfig({});
  assert.equal(config.attachments.maxBytes, 16 * 1024 * 1024);
  assert.ok(config.attachments.mediaTypes.includes('application/vnd.dev.cosign.simplesigning.v1+json'));
  assert.ok(config.blockedRegistries.includes('*.gcr.io'));
});

test('attachment and blocklist settings are read as lists', () => {
  const config = loadConfig({ ATTACHMENT_MEDIA_TYPES: 'application/spdx+json, Text/SPDX', ATTACHMENT_MAX_BYTES: '1024', BLOCKED_REGISTRIES: 'quay.io,*.corp.example' });
  assert.deepEqual(config.attachments, { mediaTypes: ['application/spdx+json', 'text/spdx'], maxBytes: 1024 });
  assert.deepEqual(config.blockedRegistries, ['quay.io', '*.corp.example']);
});

test('empty strings count as unset', () => {
  assert.equal(loadConfig({ PORT: '', DATABASE_URL: '' }).port, 5000);
});

const invalidCases: Array<[string, Record<string, string>, string]> = [
  ['non-numeric PORT', { PORT: 'http' }, 'PORT'],
  ['PORT above 65535', { PORT: '70000' }, 'PORT'],
  ['unknown STORAGE_DRIVER', { STORAGE_DRIVER: 'gcs' }, 'STORAGE_DRIVER'],
  ['s3 without bucket', { STORAGE_DRIVER: 's3' }, 'S3_BUCKET'],
  ['access key without secret', { STORAGE_DRIVER: 's3', S3_BUCKET: 'blobs', S3_ACCESS_KEY_ID: 'a' }, 'S3_ACCESS_KEY_ID'],
  ['bucket with uppercase', { STORAGE_DRIVER: 's3', S3_BUCKET: 'Blobs' }, 'S3_BUCKET'],
  ['DATABASE_URL of another scheme', { DATABASE_URL: 'mysql://localhost/x' }, 'DATABASE_URL'],
  ['PUBLIC_URL without scheme', { PUBLIC_URL: 'registry.example.com' }, 'PUBLIC_URL'],
  ['S3_FORCE_PATH_STYLE not a boolean', { S3_FORCE_PATH_STYLE: 'maybe' }, 'S3_FORCE_PATH_STYLE'],
  ['zero UPLOAD_SESSION_TTL', { UPLOAD_SESSION_TTL: '0' }, 'UPLOAD_SESSION_TTL'],
  ['unknown LOG_LEVEL', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  ['ATTACHMENT_MEDIA_TYPES entry that is no media type', { ATTACHMENT_MEDIA_TYPES: 'application/spdx+json,spdx' }, 'ATTACHMENT_MEDIA_TYPES'],
  ['ATTACHMENT_MEDIA_TYPES with a filesystem layer type', { ATTACHMENT_MEDIA_TYPES: 'application/vnd.oci.image.layer.v1.tar+gzip' }, 'ATTACHMENT_MEDIA_TYPES'],
  ['zero ATTACHMENT_MAX_BYTES', { ATTACHMENT_MAX_BYTES: '0' }, 'ATTACHMENT_MAX_BYTES'],
  ['BLOCKED_REGISTRIES entry with a path', { BLOCKED_REGISTRIES: 'docker.io/library' }, 'BLOCKED_REGISTRIES'],
  ['BLOCKED_REGISTRIES wildcard inside a host', { BLOCKED_REGISTRIES: 'gcr.*.io' }, 'BLOCKED_REGISTRIES'],
];

for (const [label, env, variable] of invalidCases) {
  test(`${label} is rejected naming ${variable}`, () => {
    const problems = problemsOf(env);
    assert.ok(
      problems.some((problem) => problem.startsWith(variable)),
      `expected a problem naming ${variable}, got ${JSON.stringify(problems)}`,
    );
  });
}

test('every bad variable is reported at once', () => {
  assert.equal(problemsOf({ PORT: 'x', LOG_LEVEL: 'loud' }).length, 2);
});

const moreInvalidCases: Array<[string, Record<string, string>, string]> = [
  ['purge interval beyond the timer range', { UPLOAD_PURGE_INTERVAL: '2592000' }, 'UPLOAD_PURGE_INTERVAL'],
  ['TRUSTED_PROXIES that is no address', { TRUSTED_PROXIES: 'garbage' }, 'TRUSTED_PROXIES'],
  ['TRUSTED_PROXIES with a prefix over 32', { TRUSTED_PROXIES: '10.0.0.0/33' }, 'TRUSTED_PROXIES'],
  ['DATABASE_URL with a port that is no number', { DATABASE_URL: 'postgres://user:secret@db:notaport/x' }, 'DATABASE_URL'],
];

for (const [label, env, variable] of moreInvalidCases) {
  test(`${label} is rejected naming ${variable}`, () => {
    const problems = problemsOf(env);
    assert.ok(
      problems.some((problem) => problem.startsWith(variable)),
      `expected a problem naming ${variable}, got ${JSON.stringify(problems)}`,
    );
  });
}

test('TRUSTED_PROXIES accepts addresses and ranges', () => {
  assert.deepEqual(loadConfig({ TRUSTED_PROXIES: '10.0.0.1, 192.168.0.0/16,::1' }).trustedProxies, ['10.0.0.1', '192.168.0.0/16', '::1']);
});
