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

  it('reports a password for a host with an ordinary name', async () => {
    const hosts = ['db', 'database', 'localhost', 'cache.corp.local', 'registry', 'git.internal', 'db.acme.com'];
    const text = hosts.map((host) => `postgres://app:${fixtures.randomToken(20)}@${host}:5432/app\n`).join('');
    const findings = await scanFile('app/notes.txt', text);
    assert.deepEqual(findings.map((f) => f.line), [1, 2, 3, 4, 5, 6, 7]);
  });

  it('reports a password for a common user name', async () => {
    const users = ['admin', 'user', 'alice', 'root', 'guest'];
    const text = users.map((user) => `https://${user}:${fixtures.randomToken(20)}@git.corp.local/team/app.git\n`).join('');
    const findings = await scanFile('app/notes.txt', text);
    assert.deepEqual(findings.map((f) => f.line), [1, 2, 3, 4, 5]);
  });

  it('reports the URLs of a .env file', async () => {
    const text = `DATABASE_URL=postgres://app:${fixtures.randomToken(20)}@db:5432/app\nREDIS_URL=redis://:${fixtures.randomToken(20)}@cache.corp.local:6379/0\n`;
    const findings = await scanFile('app/.env', text);
    assert.deepEqual(findings.map((f) => [f.detector, f.line]), [['url-credentials', 1], ['url-credentials', 2]]);
  });

  it('ignores documentation hosts', async () => {
    const hosts = ['example.com', 'www.example.org', 'ftp.example.net', 'db.example', 'host.invalid', 'api.test'];
    const text = hosts.map((host) => `https://app:${fixtures.randomToken(20)}@${host}/\n`).join('');
    assert.deepEqual(await scanFile('usr/share/doc/app/README', text), []);
  });

  it('ignores sample passwords on real-looking hosts', async () => {
    const passwords = ['guest', 'password', 'secret', 'mypassword1', 'Secret123', 'OpenSesame', 'pass1234', 'changeme', '${DB_PASSWORD}', '%2A%2A%2A%2A', 'xxxxxxxx', 'tiger', '12345678', 'some-words'];
    const text = passwords.map((password) => `ftp://anonymous:${password}@ftp.gnu.org/pub/\n`).join('');
    assert.deepEqual(await scanFile('usr/share/doc/app/README', text), []);
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

describe('config file secrets', () => {
  const cases: Array<[string, (secret: string) => string, number]> = [
    ['app/config/database.yml', (secret) => `production:\n  adapter: postgresql\n  password: ${secret}\n`, 3],
    ['app/config.yaml', (secret) => `auth:\n  clientSecret: "${secret}" # from the console\n`, 2],
    ['app/appsettings.json', (secret) => JSON.stringify({ Database: { Host: 'db', Password: secret } }, null, 2), 4],
    ['app/min.json', (secret) => JSON.stringify({ db: { user: 'app', password: secret } }), 1],
    ['app/application.properties', (secret) => `spring.datasource.url=jdbc:postgresql://db/app\nspring.datasource.password=${secret}\n`, 2],
    ['etc/app/app.ini', (secret) => `[database]\nuser = app\npassword = ${secret} ; set by ops\n`, 3],
    ['etc/app/app.cfg', (secret) => `[auth]\napi_key: ${secret}\n`, 2],
    ['etc/app/app.conf', (secret) => `db_password ${secret};\n`, 1],
    ['etc/mysql/debian.cnf', (secret) => `[client]\nuser = debian-sys-maint\npassword = ${secret}\n`, 3],
    ['app/config.toml', (secret) => `[database]\npassword = "${secret}"\n`, 2],
    ['app/config.xml', (secret) => `<config>\n  <db:password>${secret}</db:password>\n</config>\n`, 2],
    ['app/server.xml', (secret) => `<Resource name="jdbc/app" username="app" password="${secret}"/>\n`, 1],
    ['app/web.config', (secret) => `<appSettings>\n  <add key="DbPassword" value="${secret}" />\n</appSettings>\n`, 2],
    ['app/App.config', (secret) => `<add name="Main" connectionString="Server=db;Database=app;User Id=sa;Password=${secret};" />\n`, 1],
    ['app/mysite/settings.py', (secret) => `DEBUG = False\nSECRET_KEY = '${secret}'\n`, 2],
    ['app/local_settings.py', (secret) => `DATABASES = {\n    'default': {\n        'PASSWORD': "${secret}",\n    },\n}\n`, 3],
    ['app/mysite/settings/production.py', (secret) => `EMAIL_HOST_PASSWORD = '${secret}'\n`, 1],
    ['var/www/html/wp-config.php', (secret) => `<?php\ndefine( 'DB_PASSWORD', '${secret}' );\n`, 2],
    ['var/www/html/wp-config.php', (secret) => `define('AUTH_KEY',         '${secret}');\n`, 1],
    ['root/.pgpass', (secret) => `# host:port:db:user:password\ndb:5432:*:app:${secret}\n`, 2],
  ];
  for (const [path, render, line] of cases) {
    it(`reports a password in ${path.slice(path.lastIndexOf('/') + 1)} line ${line}`, async () => {
      const findings = await scanFile(path, render(`${fixtures.randomToken(12)}7${fixtures.randomToken(7)}`));
      assert.deepEqual(findings.map((f) => [f.detector, f.line]), [['config-file-secret', line]]);
      assert.equal(findings[0]!.severity, 'high');
    });
  }

  it('reports a chosen password in .pgpass and .my.cnf', async () => {
    assert.deepEqual(detectors(await scanFile('root/.pgpass', 'localhost:5432:app:app:tiger42\n')), ['config-file-secret']);
    assert.deepEqual(detectors(await scanFile('root/.my.cnf', '[client]\npassword="rootpw"\n')), ['config-file-secret']);
  });

  it('reads escaped colons in .pgpass', async () => {
    const secret = `${fixtures.randomToken(8)}:${fixtures.randomToken(8)}`;
    const findings = await scanFile('root/.pgpass', `db:5432:app:app:${secret.replace(':', '\\:')}\n`);
    assert.deepEqual(detectors(findings), ['config-file-secret']);
    assert.equal(findings[0]!.preview.slice(0, 4), secret.slice(0, 4));
  });

  it('ignores placeholders, templates and settings', async () => {
    const text = [
      'password: changeme',
      'password: ${DB_PASSWORD}',
      'password: "{{ vault_db_password }}"',
      'password: "%(db_password)s"',
      'password: <%= @password %>',
      'password: "#{ENV[\'DB_PASSWORD\']}"',
      'password: @DB_PASSWORD@',
      'password: true',
      'password: 12345678',
      'password_file: /run/secrets/Zq8wPl3xRt6vNb2kQ7mT',
      'passwordFile: conf/Zq8wPl3x.key',
      'token_url: https://auth.corp/Zq8wPl3xRt6vNb2kQ7mT',
      'password_min_length: 12',
      'password: MySecretPassword1',
      'password: Passwort',
      'password: Mot de passe',
      'password: not-set-here',
      'secret: xxxxxxxxxxxx',
      'api_key: your-api-key-here',
      'token: ****************',
    ].join('\n');
    assert.deepEqual(await scanFile('etc/app/config.yml', text), []);
  });

  it('ignores secret names in files of other kinds', async () => {
    const text = `password = '${fixtures.randomToken(20)}'\nPASSWORD = "${fixtures.randomToken(20)}"\n`;
    assert.deepEqual(await scanFile('usr/lib/python3/dist-packages/app/tests/test_login.py', text), []);
  });

  it('reports a docker config auth once', async () => {
    const json = JSON.stringify({ auths: { 'registry.corp': { auth: Buffer.from(`ci:${fixtures.randomToken(12)}`).toString('base64') } } });
    assert.deepEqual(detectors(await scanFile('root/.docker/config.json', json)), ['docker-config-auth']);
  });

  it('reports a token of known format by its detector', async () => {
    assert.deepEqual(detectors(await scanFile('app/config.yml', `github:\n  token: ghp_${fixtures.randomToken(36)}\n`)), ['github-token']);
  });
});

describe('binary files', () => {
  it('reports a secret in a UTF-16LE .env file', async () => {
    const text = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`DB_PASSWORD=${fixtures.randomToken(14)}\r\n`, 'utf16le')]);
    assert.deepEqual(detectors(await scanFile('app/.env', text)), ['dotenv-secret']);
  });

  it('reports a secret in a UTF-16BE file on its line', async () => {
    const little = Buffer.from(`# settings\r\ntoken = ghp_${fixtures.randomToken(36)}\r\n`, 'utf16le');
    const big = Buffer.concat([Buffer.from([0xfe, 0xff]), little.swap16()]);
    const findings = await scanFile('app/notes.txt', big);
    assert.deepEqual(detectors(findings), ['github-token']);
    assert.equal(findings[0]!.line, 2);
  });

  it('reports a UTF-16 secret split across chunks', async () => {
    // An odd-length filler puts a chunk boundary of the 7000-byte test stream inside a UTF-16 code unit.
    const text = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${'# filler\n'.repeat(700)}x\nDB_PASSWORD=${fixtures.randomToken(14)}\n`, 'utf16le')]);
    assert.deepEqual(detectors(await scanFile('app/.env', text)), ['dotenv-secret']);
  });

  it('skips binary data after a UTF-16 byte order mark', async () => {
    const binary = Buffer.concat([Buffer.from([0xff, 0xfe, 0, 0, 0, 0]), Buffer.from(fixtures.rsaPkcs1Pem())]);
    assert.deepEqual(await scanFile('usr/lib/data.bin', binary), []);
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
