import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { scanLayer, type Finding } from '../../../src/scan/engine/index.js';
import * as fixtures from './helpers.js';

const LAYER = 'sha256:' + 'ab'.repeat(32);

/** Scans a single-file layer and returns its findings. */
async function scanFile(name: string, content: string | Buffer): Promise<Finding[]> {
  const tar = await fixtures.buildTar([{ name, content }]);
  const result = await scanLayer(fixtures.streamOf(tar), 'application/vnd.oci.image.layer.v1.tar', LAYER);
  assert.equal(result.unscannable, undefined);
  return result.findings;
}

function detectors(findings: Finding[]): string[] {
  return findings.map((f) => f.detector);
}

describe('private key detectors', () => {
  it('reports a PKCS#1 RSA key', async () => {
    const findings = await scanFile('etc/ssl/private/server.key', fixtures.rsaPkcs1Pem());
    assert.deepEqual(detectors(findings), ['private-key-rsa']);
    assert.equal(findings[0]!.severity, 'critical');
    assert.equal(findings[0]!.line, 1);
  });

  it('reports a SEC1 EC key', async () => {
    assert.deepEqual(detectors(await scanFile('k/ec.pem', fixtures.ecSec1Pem())), ['private-key-ec']);
  });

  it('reports a PKCS#8 key on its BEGIN line', async () => {
    const findings = await scanFile('k/p8.pem', `# key\n\n${fixtures.ecPkcs8Pem()}`);
    assert.deepEqual(detectors(findings), ['private-key-pkcs8']);
    assert.equal(findings[0]!.line, 3);
  });

  it('reports an encrypted PKCS#8 key as high', async () => {
    const findings = await scanFile('k/enc.pem', fixtures.encryptedPkcs8Pem());
    assert.deepEqual(detectors(findings), ['private-key-encrypted']);
    assert.equal(findings[0]!.severity, 'high');
  });

  it('reports an OpenSSH key', async () => {
    assert.deepEqual(detectors(await scanFile('root/.ssh/id_ed25519', fixtures.opensshPem())), ['private-key-openssh']);
  });

  it('reports an OpenSSH key with a cipher as encrypted', async () => {
    assert.deepEqual(detectors(await scanFile('root/.ssh/id_ed25519', fixtures.opensshPem('aes256-ctr'))), ['private-key-encrypted']);
  });

  it('reports a PGP private key block', async () => {
    assert.deepEqual(detectors(await scanFile('keys/secret.asc', fixtures.pgpPrivateBlock())), ['private-key-pgp']);
  });

  it('reports a key flattened with \\n escapes', async () => {
    const flat = JSON.stringify({ key: fixtures.rsaPkcs1Pem() });
    assert.deepEqual(detectors(await scanFile('app/settings.txt', flat)), ['private-key-rsa']);
  });

  it('ignores an armor with an elided body', async () => {
    const doc = '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...\n-----END RSA PRIVATE KEY-----\n';
    assert.deepEqual(await scanFile('usr/share/doc/x/README', doc), []);
  });

  it('ignores certificates and public keys', async () => {
    const body = Buffer.alloc(600, 7).toString('base64').match(/.{1,64}/g)!.join('\n');
    const text = `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n-----BEGIN PUBLIC KEY-----\n${body}\n-----END PUBLIC KEY-----\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC${fixtures.randomToken(300)} user@host\n`;
    assert.deepEqual(await scanFile('etc/ssl/certs/ca.pem', text), []);
  });

  it('ignores an OpenSSH armor without the openssh-key-v1 magic', async () => {
    const body = fixtures.randomToken(400).match(/.{1,70}/g)!.join('\n');
    assert.deepEqual(await scanFile('x/id', `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}\n-----END OPENSSH PRIVATE KEY-----\n`), []);
  });
});

describe('cloud key detectors', () => {
  it('reports an AWS key id and its secret', async () => {
    const findings = await scanFile('root/.aws/credentials', `[default]\naws_access_key_id = ${fixtures.fakeAwsKeyId()}\naws_secret_access_key = ${fixtures.fakeAwsSecret()}\n`);
    assert.deepEqual(detectors(findings), ['aws-access-key', 'aws-secret-key']);
    assert.equal(findings[1]!.severity, 'critical');
  });

  it('reports a secret beside a key id', async () => {
    const findings = await scanFile('exports/keys.csv', `User,Key,Secret\nci,${fixtures.fakeAwsKeyId()},${fixtures.fakeAwsSecret()}\n`);
    assert.deepEqual(detectors(findings), ['aws-access-key', 'aws-secret-key']);
  });

  it('ignores the documented AWS example keys', async () => {
    const text = 'aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n';
    assert.deepEqual(await scanFile('root/.aws/credentials', text), []);
  });

  it('ignores a SHA-1 digest beside a key id', async () => {
    const findings = await scanFile('x.txt', `${fixtures.fakeAwsKeyId()} ${'0123456789abcdef0123456789abcdef01234567'.replace(/0123456789/g, '9f8e7d6c5b')}\n`);
    assert.deepEqual(detectors(findings), ['aws-access-key']);
  });

  it('reports a GCP service-account file', async () => {
    const json = JSON.stringify({ type: 'service_account', project_id: 'p', private_key_id: 'k', private_key: fixtures.ecPkcs8Pem(), client_email: 'a@p.iam.gserviceaccount.com' }, null, 2);
    const findings = await scanFile('app/sa.json', json);
    assert.deepEqual(detectors(findings), ['gcp-service-account']);
    assert.equal(findings[0]!.line, 5);
  });

  it('reports an Azure storage connection string', async () => {
    const key = Buffer.from(fixtures.randomToken(64)).toString('base64');
    const text = `AZURE=DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${key};EndpointSuffix=core.windows.net\n`;
    assert.deepEqual(detectors(await scanFile('app/settings.ini', text)), ['azure-storage-key']);
  });

  it('ignores the Azurite development key', async () => {
    const text = 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\n';
    assert.deepEqual(await scanFile('app/settings.ini', text), []);
  });
});

describe('token detectors', () => {
  const cases: Array<[string, () => string]> = [
    ['github-token', () => `ghp_${fixtures.randomToken(36)}`],
    ['github-token', () => `github_pat_${fixtures.randomToken(22)}_${fixtures.randomToken(59)}`],
    ['gitlab-token', () => `glpat-${fixtures.randomToken(20)}`],
    ['slack-token', () => `xoxb-${fixtures.randomToken(12, '0123456789')}-${fixtures.randomToken(24)}`],
    ['npm-token', () => `npm_${fixtures.randomToken(36)}`],
    ['jwt', () => fixtures.fakeJwt()],
  ];
  for (const [detector, make] of cases) {
    it(`reports ${detector} ${make().slice(0, 6)}`, async () => {
      const findings = await scanFile('app/main.py', `import os\nTOKEN = "${make()}"\n`);
      assert.deepEqual(detectors(findings), [detector]);
      assert.equal(findings[0]!.line, 2);
    });
  }

  it('ignores filler tokens', async () => {
    const text = `ghp_${'x'.repeat(36)}\nghp_${'0123456789'.repeat(4).slice(0, 36)}\nnpm_${'a'.repeat(36)}\n`;
    assert.deepEqual(await scanFile('docs/tokens.md', text), []);
  });

  it('ignores the jwt.io example token', async () => {
    const example = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
    assert.deepEqual(await scanFile('docs/jwt.md', example), []);
  });

  it('ignores a JWT signed with the key secret', async () => {
    const header = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url');
    const payload = Buffer.from('{"some":"payload"}').toString('base64url');
    const signature = createHmac('sha256', 'secret').update(`${header}.${payload}`).digest('base64url');
    assert.deepEqual(await scanFile('docs/jwt.rst', `    ${header}.${payload}.${signature}\n`), []);
  });

  it('ignores three dotted base64 parts without a JSON header', async () => {
    assert.deepEqual(await scanFile('a.txt', `eyJ${fixtures.randomToken(20)}.eyJ${fixtures.randomToken(20)}.${fixtures.randomToken(30)}`), []);
  });
});

describe('url credentials', () => {
  it('reports a password in a URL as medium', async () => {
    const findings = await scanFile('app/config.yaml', `db: postgres://app:${fixtures.randomToken(16)}@db1.internal.corp:5432/app\n`);
    assert.deepEqual(detectors(findings), ['url-credentials']);
    assert.equal(findings[0]!.severity, 'medium');
  });

  it('reports a password with an empty user', async () => {
    const findings = await scanFile('app/run.sh', `REDIS_URL=redis://:${fixtures.randomToken(16)}@cache1.internal.corp:6379/0\n`);
    assert.deepEqual(detectors(findings), ['url-credentials']);
  });

  it('ignores placeholders and example hosts', async () => {
    const text = ['cvs://:pserver:anoncvs@sources.redhat.com:/cvs/src', 'ftp://user:password@host/', 'http://joe:secret@example.com/', 'https://${USER}:${PASS}@registry.corp/', 'http://user:<password>@proxy:3128', 'http://a:8080@b'].join('\n');
    assert.deepEqual(await scanFile('usr/share/doc/curl/README', text), []);
  });
});

describe('credential file formats', () => {
  it('reports .npmrc _authToken', async () => {
    const findings = await scanFile('root/.npmrc', `registry=https://npm.corp/\n//npm.corp/:_authToken=${fixtures.randomToken(30)}\n`);
    assert.deepEqual(detectors(findings), ['npmrc-auth']);
  });

  it('ignores .npmrc variable references', async () => {
    assert.deepEqual(await scanFile('root/.npmrc', '//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n'), []);
  });

  it('reports docker config auths', async () => {
    const json = JSON.stringify({ auths: { 'registry.corp': { auth: Buffer.from(`ci:${fixtures.randomToken(12)}`).toString('base64') } } }, null, 2);
    const findings = await scanFile('root/.docker/config.json', json);
    assert.deepEqual(detectors(findings), ['docker-config-auth']);
    assert.equal(findings[0]!.line, 4);
  });

  it('reports docker config with a BOM', async () => {
    const json = JSON.stringify({ auths: { 'registry.corp': { auth: Buffer.from(`ci:${fixtures.randomToken(12)}`).toString('base64') } } });
    const findings = await scanFile('root/.docker/config.json', `\uFEFF${json}`);
    assert.deepEqual(detectors(findings), ['docker-config-auth']);
  });

  it('ignores docker config with only a credential helper', async () => {
    assert.deepEqual(await scanFile('root/.docker/config.json', JSON.stringify({ auths: { 'r.corp': {} }, credsStore: 'pass' })), []);
  });

  it('reports .git-credentials', async () => {
    const findings = await scanFile('root/.git-credentials', `https://ci:${fixtures.randomToken(20)}@git.corp.io\n`);
    assert.deepEqual(detectors(findings), ['git-credentials']);
  });

  it('reports .pypirc password', async () => {
    const findings = await scanFile('root/.pypirc', `[pypi]\nusername = __token__\npassword = pypi-${fixtures.randomToken(40)}\n`);
    assert.deepEqual(detectors(findings), ['pypirc-password']);
  });

  it('reports kubeconfig token and client key', async () => {
    const clientKey = Buffer.from(fixtures.ecSec1Pem()).toString('base64');
    const text = `apiVersion: v1\nkind: Config\nusers:\n- name: a\n  user:\n    client-key-data: ${clientKey}\n- name: b\n  user:\n    token: ${fixtures.randomToken(40)}\n`;
    const findings = await scanFile('root/.kube/config', text);
    assert.deepEqual(detectors(findings), ['kubeconfig-client-key', 'kubeconfig-token']);
    assert.equal(findings[0]!.severity, 'critical');
  });

  it('reports .env secrets by name', async () => {
    const text = `# settings\nDB_PASSWORD=${fixtures.randomToken(14)}\nexport STRIPE_API_KEY="${fixtures.randomToken(24)}"\nDEBUG=true\n`;
    const findings = await scanFile('app/.env.production', text);
    assert.deepEqual(detectors(findings), ['dotenv-secret', 'dotenv-secret']);
    assert.deepEqual(findings.map((f) => f.line), [2, 3]);
  });

  it('reports keystore and backend secret names', async () => {
    const names = ['KAFKA_SSL_KEYSTORE_PASSWORD', 'TRUSTSTORE_PASSWORD', 'AZURE_STORAGE_ACCESS_KEY', 'BACKEND_API_KEY', 'OAUTH_PROVIDER_CLIENT_SECRET', 'CORPORATE_API_KEY', 'GENERATE_TOKEN'];
    const text = names.map((name) => `${name}=${fixtures.randomToken(16)}\n`).join('');
    const findings = await scanFile('app/.env', text);
    assert.deepEqual(findings.map((f) => [f.line, f.detector]), names.map((_, index) => [index + 1, 'dotenv-secret']));
  });

  it('ignores .env settings about a secret', async () => {
    const text = ['TOKEN_RATE_LIMIT', 'SECRET_PROVIDER', 'PASSWORD_STORE', 'API_KEY_ROTATION', 'TOKEN_BACKEND'].map((name) => `${name}=${fixtures.randomToken(8)}\n`).join('');
    assert.deepEqual(await scanFile('app/.env', text), []);
  });

  it('ignores .env placeholders, paths and non-secret names', async () => {
    const text = 'DB_PASSWORD=changeme\nAPI_TOKEN=${TOKEN}\nPASSWORD_FILE=/run/secrets/db\nTOKEN_URL=https://auth.corp/token\nSECRET_KEY=<your-secret>\nAPI_KEY=xxx\nPASSWORD=\nSECRET=null\n';
    assert.deepEqual(await scanFile('app/.env', text), []);
  });
});

describe('binary files', () => {
  // TODO: UTF-16 text has a NUL in every other byte, so it is skipped as binary; Windows tools write .env and config files in UTF-16LE.
  it('reports a secret in a UTF-16LE .env file', { todo: 'UTF-16 text is read as binary' }, async () => {
    const text = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`DB_PASSWORD=${fixtures.randomToken(14)}\r\n`, 'utf16le')]);
    assert.deepEqual(detectors(await scanFile('app/.env', text)), ['dotenv-secret']);
  });

  it('skips a binary file with a key inside', async () => {
    const binary = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0]), Buffer.from(fixtures.rsaPkcs1Pem())]);
    assert.deepEqual(await scanFile('usr/bin/tool', binary), []);
  });

  it('reports a PKCS#12 file with a key bag', async () => {
    assert.deepEqual(detectors(await scanFile('certs/client.bin', fixtures.pkcs12WithKeyBag())), ['pkcs12']);
  });

  it('reports a .p12 file by name', async () => {
    assert.deepEqual(detectors(await scanFile('certs/client.p12', fixtures.pkcs12WithoutKeyBag())), ['pkcs12']);
  });

  it('ignores a PKCS#12 trust store', async () => {
    assert.deepEqual(await scanFile('etc/ssl/certs/java/cacerts', fixtures.pkcs12WithoutKeyBag()), []);
  });
});

describe('redaction', () => {
  it('never includes the secret in findings', async () => {
    const secrets = [fixtures.fakeAwsSecret(), `ghp_${fixtures.randomToken(36)}`, fixtures.randomToken(16)];
    const text = `aws_secret_access_key=${secrets[0]}\nt=${secrets[1]}\nurl=https://ci:${secrets[2]}@git.corp.io/\n`;
    const findings = await scanFile('app/secrets.txt', text);
    assert.equal(findings.length, 3);
    const serialized = JSON.stringify(findings);
    for (const secret of secrets) assert.ok(!serialized.includes(secret), 'secret appears in findings');
    for (const secret of secrets) assert.ok(!serialized.includes(secret.slice(0, 8)), 'secret prefix past 4 characters appears');
  });

  it('keeps fingerprints stable across scans', async () => {
    const text = `aws_secret_access_key=${fixtures.fakeAwsSecret()}\n`;
    const first = await scanFile('a/b', text);
    const second = await scanFile('a/b', text);
    assert.equal(first[0]!.fingerprint, second[0]!.fingerprint);
    assert.match(first[0]!.preview, /^aZ9\/…\(sha256:[0-9a-f]{12}\)$/);
  });
});
