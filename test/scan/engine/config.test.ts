import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { ScanInputError, scanImageConfig, type Finding } from '../../../src/scan/engine/index.js';
import * as fixtures from './helpers.js';

function scan(document: unknown): Finding[] {
  return scanImageConfig(Buffer.from(JSON.stringify(document)));
}

function summary(findings: Finding[]): Array<[string | null, string]> {
  return findings.map((f) => [f.path, f.detector]);
}

describe('scanImageConfig', () => {
  it('reports Env secrets by name', () => {
    const findings = scan({ config: { Env: ['PATH=/usr/bin', `DB_PASSWORD=${fixtures.randomToken(12)}`, `my_api_key=${fixtures.randomToken(20)}`, `GH_TOKEN=${fixtures.randomToken(20)}`] } });
    assert.deepEqual(summary(findings), [['Env[1]', 'config-env-secret'], ['Env[2]', 'config-env-secret'], ['Env[3]', 'config-env-secret']]);
    assert.equal(findings[0]!.layer, 'config');
    assert.equal(findings[0]!.severity, 'high');
  });

  it('keys the preview hash when given a preview key', () => {
    const secret = fixtures.randomToken(16);
    const [finding] = scanImageConfig(Buffer.from(JSON.stringify({ config: { Env: [`DB_PASSWORD=${secret}`] } })), { previewKey: Buffer.alloc(32, 7) });
    const plain = createHash('sha256').update(secret, 'latin1').digest('hex').slice(0, 12);
    assert.match(finding!.preview, /…\(hmac:[0-9a-f]{12}\)$/);
    assert.ok(!finding!.preview.includes(plain), 'the preview shows the plain sha256 of the secret');
  });

  it('reports Env keystore passwords', () => {
    const findings = scan({ config: { Env: [`KEYSTORE_PASSWORD=${fixtures.randomToken(12)}`, `ES_SSL_TRUSTSTORE_PASSWORD=${fixtures.randomToken(12)}`] } });
    assert.deepEqual(summary(findings), [['Env[0]', 'config-env-secret'], ['Env[1]', 'config-env-secret']]);
  });

  it('ignores Env placeholders, paths and settings', () => {
    const env = ['PASSWORD_FILE=/run/secrets/db', 'TOKEN_URL=https://auth.corp/token', 'SECRET_NAME=db', 'DB_PASSWORD=', 'API_KEY=changeme', 'TOKEN=${TOKEN}', 'GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D', 'PWD=/app', 'SECRET_KEY=<secret>', 'JWT_SECRET=***'];
    assert.deepEqual(scan({ config: { Env: env } }), []);
  });

  it('reports tokens in Env values of any name', () => {
    assert.deepEqual(summary(scan({ config: { Env: [`UPSTREAM=ghp_${fixtures.randomToken(36)}`] } })), [['Env[0]', 'github-token']]);
  });

  it('reports secrets in Cmd and Entrypoint', () => {
    const findings = scan({ config: { Entrypoint: ['/app', '--password', fixtures.randomToken(12)], Cmd: [`--token=${fixtures.randomToken(16)}`] } });
    assert.deepEqual(summary(findings), [['Cmd[0]', 'config-command-secret'], ['Entrypoint[2]', 'config-command-secret']]);
  });

  it('reports secret labels', () => {
    const findings = scan({ config: { Labels: { 'org.opencontainers.image.source': 'https://git.corp/x', 'deploy.token': fixtures.randomToken(20) } } });
    assert.deepEqual(summary(findings), [['Labels.deploy.token', 'config-label-secret']]);
  });

  it('reports secrets in history', () => {
    const history = [
      { created_by: '/bin/sh -c #(nop) ADD file:abc in / ' },
      { created_by: `/bin/sh -c echo "password=${fixtures.randomToken(10)}" > /etc/app.conf` },
      { created_by: `|1 NPM_TOKEN=${fixtures.randomToken(16)} /bin/sh -c npm ci` },
      { created_by: `ENV DB_PASSWORD=${fixtures.randomToken(10)}` },
      { created_by: `/bin/sh -c #(nop)  ENV ADMIN_PASSWORD ${fixtures.randomToken(10)}` },
      { created_by: 'RUN /bin/sh -c apt-get update && apt-get install -y curl # buildkit', empty_layer: false },
      { created_by: 'ARG NPM_TOKEN' },
    ];
    assert.deepEqual(summary(scan({ history })), [
      ['history[1].created_by', 'config-history-secret'],
      ['history[2].created_by', 'config-history-secret'],
      ['history[3].created_by', 'config-history-secret'],
      ['history[4].created_by', 'config-history-secret'],
    ]);
  });

  it('reports URL credentials in history', () => {
    const history = [{ created_by: `RUN /bin/sh -c git clone https://admin:${fixtures.randomToken(20)}@git.corp.local/team/app.git # buildkit` }];
    assert.deepEqual(summary(scan({ history })), [['history[0].created_by', 'url-credentials']]);
  });

  const commands: Array<[string, (secret: string) => string]> = [
    ['curl -u', (secret) => `curl -fsSL -u deploy:${secret} https://nexus.corp/app.tgz -o /app.tgz`],
    ['curl --user', (secret) => `curl --user "deploy:${secret}" https://nexus.corp/app.tgz`],
    ['curl -uUSER:PASS', (secret) => `curl -udeploy:${secret} https://nexus.corp/app.tgz`],
    ['mysql -pPASS', (secret) => `mysql -h db -uroot -p${secret} app < /schema.sql`],
    ["mysql -p'PASS'", (secret) => `mysqldump -uroot -p'${secret}' app > /dump.sql`],
    ['mysql --password=PASS', (secret) => `mysql -uroot --password=${secret} -e 'select 1'`],
    ['--password PASS', (secret) => `/opt/app/bin/setup --password ${secret}`],
    ['PGPASSWORD=PASS psql', (secret) => `PGPASSWORD=${secret} psql -h db -U app -f /schema.sql`],
    ['psql URL', (secret) => `psql postgres://app:${secret}@db:5432/app -f /schema.sql`],
    ['sshpass -p', (secret) => `sshpass -p ${secret} scp deploy@build:/out/app /app`],
    ['docker login -p', (secret) => `docker login -u ci -p ${secret} registry.corp`],
    ['redis-cli -a', (secret) => `redis-cli -h cache -a ${secret} ping`],
    ['openssl pass:', (secret) => `openssl pkcs12 -export -in c.pem -passout pass:${secret} -out c.p12`],
    ['keytool -storepass', (secret) => `keytool -importcert -keystore app.jks -storepass ${secret} -file ca.pem`],
    ['sh -c script', (secret) => `sh -c 'apt-get update && sshpass -p "${secret}" ssh build true'`],
  ];
  for (const [name, render] of commands) {
    it(`reports ${name} in history`, () => {
      const history = [{ created_by: '/bin/sh -c #(nop) WORKDIR /app' }, { created_by: `RUN /bin/sh -c ${render(fixtures.randomToken(20))} # buildkit` }];
      const findings = scan({ history });
      assert.equal(findings.length, 1);
      assert.equal(findings[0]!.path, 'history[1].created_by');
    });
  }

  it('reports a password option on its line of a multi-line step', () => {
    const findings = scan({ history: [{ created_by: `RUN <<EOF\nset -e\ncurl \\\n  -u deploy:${fixtures.randomToken(20)} https://nexus.corp/x\nEOF` }] });
    assert.deepEqual(findings.map((f) => [f.detector, f.line]), [['config-history-secret', 4]]);
  });

  it('reports program passwords in exec-form Cmd', () => {
    const findings = scan({ config: { Cmd: ['mysql', '-uroot', `-p${fixtures.randomToken(16)}`], Entrypoint: ['sshpass', '-p', fixtures.randomToken(16), 'ssh', 'h'] } });
    assert.deepEqual(summary(findings), [['Cmd[2]', 'config-command-secret'], ['Entrypoint[2]', 'config-command-secret']]);
  });

  it('ignores program options without a password', () => {
    const history = [
      'mysql -uroot -p app',
      'mysql -uroot -p"$MYSQL_ROOT_PASSWORD" app',
      'curl -u "$NEXUS_USER:$NEXUS_PASSWORD" https://nexus.corp/x',
      'curl -u deploy https://nexus.corp/x',
      'curl -u user:password https://nexus.corp/x',
      'docker run -p 8080:80 -u 1000 nginx',
      'useradd -u 1000 -p "$HASH" app && sort -u list',
      'sshpass -p changeme ssh h',
      'sshpass -e ssh h',
      'openssl pkcs12 -export -passout env:P12_PASSWORD -out c.p12',
      'echo done | mysql -p',
    ].map((command) => ({ created_by: `RUN /bin/sh -c ${command} # buildkit` }));
    assert.deepEqual(scan({ history }), []);
  });

  it('reports a key in a history heredoc on its line', () => {
    const findings = scan({ history: [{ created_by: `RUN <<EOF\ncat > /k <<KEY\n${fixtures.ecPkcs8Pem()}KEY\nEOF` }] });
    assert.deepEqual(findings.map((f) => [f.detector, f.line]), [['private-key-pkcs8', 3]]);
  });

  it('throws ScanInputError on non-JSON', () => {
    assert.throws(() => scanImageConfig(Buffer.from('not json')), ScanInputError);
  });

  it('throws ScanInputError on a JSON array', () => {
    assert.throws(() => scanImageConfig(Buffer.from('[]')), ScanInputError);
  });

  it('never includes the secret in findings', () => {
    const secret = fixtures.randomToken(24);
    const findings = scan({ config: { Env: [`DB_PASSWORD=${secret}`] }, history: [{ created_by: `ENV DB_PASSWORD=${secret}` }] });
    assert.equal(findings.length, 2);
    assert.ok(!JSON.stringify(findings).includes(secret));
  });
});
