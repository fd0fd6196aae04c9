/**
 * Detectors and their severities.
 *
 * | detector | finds | severity |
 * | --- | --- | --- |
 * | private-key-rsa, private-key-ec, private-key-dsa, private-key-pkcs8 | unencrypted PEM private keys | critical |
 * | private-key-openssh | unencrypted openssh-key-v1 keys | critical |
 * | private-key-pgp | PGP private key blocks | critical |
 * | private-key-encrypted | PKCS#8 `ENCRYPTED PRIVATE KEY`, PEM with `Proc-Type: 4,ENCRYPTED`, openssh keys with a cipher | high |
 * | pkcs12 | PKCS#12 files holding a key bag, or any PKCS#12 file named `.p12`/`.pfx` | critical |
 * | aws-secret-key | AWS secret access keys (after `aws_secret_access_key` or on a line with an access key id) | critical |
 * | aws-access-key | AWS access key ids `AKIA…`/`ASIA…` | high |
 * | gcp-service-account | GCP service-account JSON with a private key | critical |
 * | azure-storage-key | `AccountKey=` in Azure storage connection strings | critical |
 * | kubeconfig-client-key | kubeconfig `client-key-data` holding a PEM key | critical |
 * | github-token, gitlab-token, slack-token, npm-token | tokens by their documented prefixes | high |
 * | npmrc-auth | `.npmrc` `_authToken`, `_auth`, `_password` | high |
 * | docker-config-auth | Docker `config.json` `auths.*.auth` or `identitytoken` | high |
 * | git-credentials | `.git-credentials` URLs with a password | high |
 * | pypirc-password | `.pypirc` `password` | high |
 * | kubeconfig-token, kubeconfig-password | kubeconfig `token` and `password` | high |
 * | dotenv-secret | `.env` files: variables with a secret-looking name | high |
 * | config-file-secret | configuration files by name (YAML, JSON, XML, `.properties`, `.ini`, `.cfg`, `.conf`, `.cnf`, `.toml`, Django settings, `wp-config.php`): secret-named keys whose value passes looksLikePassword; connection-string `Password=`; every password in `.pgpass` and `.my.cnf` | high |
 * | config-env-secret, config-label-secret, config-command-secret, config-history-secret | image config `Env`, `Labels`, `Cmd`/`Entrypoint`, `history[].created_by` assignments to a secret-looking name, and passwords given to known programs (`curl -u`, `mysql -p`, `sshpass -p`, `docker login -p`, …) | high |
 * | jwt | JSON Web Tokens | medium |
 * | url-credentials | URLs with `user:password@` whose password passes looksLikePassword, for any user and any host but documentation hosts (example.com, `.example`, `.invalid`, `.test`) | medium |
 *
 * Every value detector first rejects placeholders (`changeme`, `${VAR}`, `<password>`, `xxx`, …)
 * and documented example values, because a clean image must yield no findings. Text files with
 * a UTF-16 byte order mark are decoded before they are scanned.
 */
import { createHmac } from 'node:crypto';
import type { Severity } from './types.js';

export const SEVERITIES = {
  'private-key-rsa': 'critical',
  'private-key-ec': 'critical',
  'private-key-dsa': 'critical',
  'private-key-pkcs8': 'critical',
  'private-key-openssh': 'critical',
  'private-key-pgp': 'critical',
  'private-key-encrypted': 'high',
  pkcs12: 'critical',
  'aws-secret-key': 'critical',
  'aws-access-key': 'high',
  'gcp-service-account': 'critical',
  'azure-storage-key': 'critical',
  'kubeconfig-client-key': 'critical',
  'github-token': 'high',
  'gitlab-token': 'high',
  'slack-token': 'high',
  'npm-token': 'high',
  'npmrc-auth': 'high',
  'docker-config-auth': 'high',
  'git-credentials': 'high',
  'pypirc-password': 'high',
  'kubeconfig-token': 'high',
  'kubeconfig-password': 'high',
  'dotenv-secret': 'high',
  'config-env-secret': 'high',
  'config-label-secret': 'high',
  'config-command-secret': 'high',
  'config-history-secret': 'high',
  'config-file-secret': 'high',
  jwt: 'medium',
  'url-credentials': 'medium',
} as const satisfies Record<string, Severity>;

export type DetectorId = keyof typeof SEVERITIES;

/** Called by a detector for each secret it finds; `secret` is the value to digest, never stored. */
export type Emit = (detector: DetectorId, secret: string) => void;

/**
 * Keywords that any secret the line detectors find contains. Lines without one are not examined,
 * which keeps scanning close to decompression speed. The match is case-insensitive, so the
 * detectors check case themselves.
 */
export const PREFILTER = /-----BEGIN |AKIA|ASIA|gh[pousr]_|github_pat_|glpat-|xox[abpr]-|npm_|eyJ|:\/\/[^\s/@:]*:[^\s/@]*@|AccountKey=|secret_?access_?key|client-key-data/gi;

/**
 * PREFILTER and the words of secret-looking names, for configuration files. A key such as
 * `db_password` or `apiKey` contains one of these words, and so does a connection string's `Pwd=`.
 */
export const CONFIG_PREFILTER = new RegExp(`${PREFILTER.source}|pass|pwd|secret|token|key|auth|credential|salt`, 'gi');

const PLACEHOLDER_EXACT = new Set([
  '', 'null', 'nil', 'none', 'undefined', 'true', 'false', 'yes', 'no', 'on', 'off',
  'changeme', 'change_me', 'change-me', 'changeit', 'password', 'passwd', 'pass', 'secret', 'token',
  'example', 'dummy', 'test', 'testing', 'sample', 'placeholder', 'redacted', 'hidden', 'default',
  'empty', 'foo', 'bar', 'baz', 'foobar', 'value', 'string', 'required', 'optional', 'unset', 'tbd', 'todo',
]);
const PLACEHOLDER_PATTERN = new RegExp(
  [
    '^[x*.#_-]+$', // xxx, ***, ..., ---
    '^<.*>$', '^\\[.*\\]$', '^\\{.*\\}$', '^\\(.*\\)$', // <password>, [token], {secret}
    '\\$\\{.*\\}', '^\\$[A-Za-z_][A-Za-z0-9_]*$', '\\$\\(', '^%[A-Za-z_]+%$', '%s', '%\\(\\w+\\)s', '\\{\\{.*\\}\\}', // variable references and templates
    '^@[A-Za-z_][A-Za-z0-9_]*@$', '#\\{.*\\}', '<%.*%>', '%\\{[A-Za-z_]', // autoconf '@VAR@', Ruby '#{var}', ERB '<%= var %>', Hiera and RPM '%{var}'
    '^your[-_ ]', '[-_ ]here$', 'example', 'placeholder', 'xxxx', '\\*\\*\\*', 'redacted', 'dummy', 'changeme', 'change[-_ ]me', 'fake', 'insert[-_ ]',
  ].join('|'),
  'i',
);

/** Reports whether a candidate secret value is a placeholder, a variable reference or an example rather than a secret. */
export function isPlaceholder(value: string): boolean {
  const v = value.trim();
  if (v.length < 4) return true;
  if (PLACEHOLDER_EXACT.has(v.toLowerCase())) return true;
  if (PLACEHOLDER_PATTERN.test(v)) return true;
  // A single repeated character or a run such as 'aaaaaaaa' or '00000000' is filler.
  if (/^(.)\1*$/.test(v)) return true;
  return false;
}

/** Reports whether a value is a path or a reference to a secret kept elsewhere, not the secret itself. */
function isReference(value: string): boolean {
  return /^(?:\/|\.\.?\/|~\/|file:|vault:|arn:|secretsmanager:|projects\/[^/]+\/secrets\/)/i.test(value);
}

const SECRET_NAME = /PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIALS?$|(?:^|_)PWD$|(?:^|_)AUTH$/i;
const NOT_SECRET_NAME = new RegExp(
  '_(?:FILE|FILES|PATH|DIR|URL|URI|HOST|PORT|NAME|TYPE|ID|TTL|TIMEOUT|EXPIRY|EXPIRES|EXPIRATION|LIFETIME|LENGTH|LEN|SIZE|MODE|' +
    'ENABLED|ENABLE|DISABLED|REGION|ALGORITHM|ALG|HEADER|ENDPOINT|VERSION|FORMAT|PREFIX|SUFFIX|LOCATION|POLICY|COUNT|MIN|MAX|' +
    'REQUIRED|FIELD|PARAM|ISSUER|AUDIENCE|SCOPE|SCOPES|COMMAND|CMD|HASH|SHA256|SHA|CHECKSUM|RESET|REFRESH_INTERVAL|EXPIRE)$|' +
    'PUBLIC|^(?:OLD)?PWD$|KEY_?ID$',
  'i',
);
/** Secret words of a name; a setting word counts only after the last of them. */
const SECRET_WORDS = /PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|KEY|CREDENTIAL|PWD|AUTH/gi;
/**
 * Words that make a name a setting about a secret when they follow its secret word, as in
 * `TOKEN_RATE_LIMIT` or `SECRET_PROVIDER`, but not before it, as in `BACKEND_API_KEY`, and not
 * inside another word, as in `KEYSTORE_PASSWORD` or `GENERATE_TOKEN`.
 */
const SETTING_WORD = /_(?:LIMIT|RATE|STORE|STORAGE|PROVIDER|BACKEND|MANAGER|ROTATION)(?:_|$)/i;

/** Reports whether a variable, label or option name looks like it contains a secret (`DB_PASSWORD`, `--token`), and not a path or setting about one (`PASSWORD_FILE`, `TOKEN_URL`). */
export function isSecretName(name: string): boolean {
  const normalized = name.replace(/-/g, '_').replace(/^_+/, '');
  if (!SECRET_NAME.test(normalized) || NOT_SECRET_NAME.test(normalized)) return false;
  let lastWord = 0;
  for (const word of normalized.matchAll(SECRET_WORDS)) lastWord = word.index;
  return !SETTING_WORD.test(normalized.slice(lastWord));
}

/** Reports whether a value assigned to a secret-looking name is worth reporting. */
export function isSecretValue(value: string): boolean {
  return !isPlaceholder(value) && !isReference(value);
}

/** Removes one level of matching quotes. */
export function unquote(value: string): string {
  const v = value.trim();
  if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v[v.length - 1] === v[0]) return v.slice(1, -1);
  return v;
}

/** Reports whether a token is varied enough to be random rather than filler such as 'ghp_aaaa…' or 'ghp_0123456789…'. */
export function looksRandom(token: string): boolean {
  if (/(.)\1{5}/.test(token)) return false;
  if (/0123456789|abcdefghij|ABCDEFGHIJ/.test(token)) return false;
  return new Set(token).size >= Math.min(12, Math.floor(token.length / 3));
}

/** Words that mark a sample password ('mypassword1', 'Secret123!', 'test1234'); a generated value contains them only by rare chance. */
const SAMPLE_WORD = /pass|pwd|secret|sample|test|demo|default|changeit|letmein|qwerty|12345/i;
/** Endings of file names, so that 'conf/db.key' is taken as a path and not as a secret. */
const FILE_NAME_END = /\.(?:pem|key|crt|cer|txt|json|ya?ml|conf|cfg|ini|jks|p12|pfx|der|env|properties|xml)$/i;
/** Names as people write them: one or more words, each lower case, capitalized or upper case. */
const WORD_CASE = /^(?:[A-Z]?[a-z]+)+$|^[A-Z]+$/;

/**
 * Reports whether a value looks like a password someone generated or chose rather than a word, a
 * name, a number or a sample. The value must be 8 to 1024 printable ASCII characters without
 * spaces, and it must pass isSecretValue and looksRandom and contain no sample word. It must
 * also have letters with a digit, a symbol other than '-', '_' and '.', or a case change inside
 * a word. Used where the name
 * alone does not make a value a secret: passwords in URLs and secret-named keys in config files.
 */
export function looksLikePassword(value: string): boolean {
  if (value.length < 8 || value.length > 1024) return false;
  if (!/^[\x21-\x7e]+$/.test(value)) return false;
  if (!isSecretValue(value) || SAMPLE_WORD.test(value) || FILE_NAME_END.test(value) || value.includes('://')) return false;
  if (!/[A-Za-z]/.test(value) || !looksRandom(value)) return false;

  if (/[0-9]/.test(value) || /[^A-Za-z0-9._-]/.test(value)) return true;
  return value.split(/[._-]+/).some((word) => word !== '' && !WORD_CASE.test(word));
}

/** Decodes %XX escapes, as URLs carry reserved characters of a password; returns the value unchanged when an escape is malformed. */
export function decodePercent(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

// AWS documentation uses AKIAIOSFODNN7EXAMPLE and wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY as example keys.
const AWS_EXAMPLE = /EXAMPLE/;
const AWS_KEY_ID = /(?<![A-Z0-9])((?:AKIA|ASIA)[A-Z2-7]{16})(?![A-Za-z0-9])/g;
const AWS_SECRET_ASSIGNED = /secret_?access_?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/i;
const AWS_SECRET_BARE = /(?<![A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/g;

const GITHUB_TOKEN = /(?<![A-Za-z0-9_])(gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?![A-Za-z0-9_])/g;
const GITLAB_TOKEN = /(?<![A-Za-z0-9_-])(glpat-[A-Za-z0-9_-]{20,})/g;
const SLACK_TOKEN = /(?<![A-Za-z0-9-])(xox[abpr]-\d{6,}-[A-Za-z0-9-]{10,})/g;
const NPM_TOKEN = /(?<![A-Za-z0-9_])(npm_[A-Za-z0-9]{36})(?![A-Za-z0-9])/g;
const JWT = /(?<![A-Za-z0-9_-])(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,})/g;
// The 'John Doe' token from the JWT introduction at jwt.io appears in many documents.
const JWT_EXAMPLE_PAYLOAD = 'eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi';
// The user may be empty, as in 'redis://:password@host', the form Redis clients use for a password without a user.
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]{1,20}):\/\/([^\s/@:'"<>()[\]{}]{0,256}):([^\s/@'"<>]{1,256})@([A-Za-z0-9][A-Za-z0-9.-]*)/gi;
/**
 * Host names reserved for documentation, which no real service can have: example.com, example.org,
 * example.net and their subdomains (RFC 2606), and the top-level names .example, .invalid and .test
 * (RFC 2606, RFC 6761). Ordinary names such as 'db', 'localhost' or 'git.corp.local' are real hosts
 * inside an image's network, so a password for them is reported.
 */
const DOCUMENTATION_HOST = /(?:^|\.)(?:example\.(?:com|org|net)|example|invalid|test)\.?$/i;
const AZURE_ACCOUNT_KEY = /AccountKey=([A-Za-z0-9+/]{80,}={0,2})/g;
// The Azurite storage emulator's published development key.
const AZURITE_KEY_PREFIX = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq';
const CLIENT_KEY_DATA = /client-key-data["']?\s*:\s*["']?([A-Za-z0-9+/=]{40,})/;

/**
 * Runs the value detectors that apply to any text line: cloud keys, tokens, JWTs, URL
 * credentials, Azure connection strings and kubeconfig client keys. PEM blocks span lines and
 * are handled by the text scanner.
 */
export function detectTokens(line: string, emit: Emit): void {
  detectAws(line, emit);

  for (const m of line.matchAll(GITHUB_TOKEN)) if (looksRandom(m[1]!.slice(4))) emit('github-token', m[1]!);
  for (const m of line.matchAll(GITLAB_TOKEN)) if (looksRandom(m[1]!.slice(6))) emit('gitlab-token', m[1]!);
  for (const m of line.matchAll(SLACK_TOKEN)) if (looksRandom(m[1]!)) emit('slack-token', m[1]!);
  for (const m of line.matchAll(NPM_TOKEN)) if (looksRandom(m[1]!.slice(4))) emit('npm-token', m[1]!);

  for (const m of line.matchAll(JWT)) if (isJwt(m[1]!)) emit('jwt', m[1]!);

  for (const m of line.matchAll(URL_CREDENTIALS)) {
    const [, , user, password, host] = m as unknown as [string, string, string, string, string];
    if (DOCUMENTATION_HOST.test(host)) continue;
    if (user === '' && password.includes(':')) continue; // CVS 'cvs://:pserver:anoncvs@host', a method and a user, not a password
    if (looksLikePassword(decodePercent(password))) emit('url-credentials', password);
  }

  for (const m of line.matchAll(AZURE_ACCOUNT_KEY)) {
    if (!m[1]!.startsWith(AZURITE_KEY_PREFIX) && looksRandom(m[1]!)) emit('azure-storage-key', m[1]!);
  }

  const clientKey = CLIENT_KEY_DATA.exec(line);
  // The value is a base64-encoded PEM block, and 'LS0tLS1CRUdJTi' is base64 of '-----BEGIN'.
  if (clientKey && clientKey[1]!.startsWith('LS0tLS1CRUdJTi')) emit('kubeconfig-client-key', clientKey[1]!);
}

function detectAws(line: string, emit: Emit): void {
  let idOnLine = false;
  for (const m of line.matchAll(AWS_KEY_ID)) {
    if (AWS_EXAMPLE.test(m[1]!) || !looksRandom(m[1]!.slice(4))) continue;
    idOnLine = true;
    emit('aws-access-key', m[1]!);
  }

  const assigned = AWS_SECRET_ASSIGNED.exec(line);
  if (assigned && isAwsSecret(assigned[1]!)) {
    emit('aws-secret-key', assigned[1]!);
    return;
  }
  if (!idOnLine) return;
  // A 40-character base64 word beside an access key id, as in credential CSV exports.
  for (const m of line.matchAll(AWS_SECRET_BARE)) if (isAwsSecret(m[1]!)) emit('aws-secret-key', m[1]!);
}

function isAwsSecret(value: string): boolean {
  if (AWS_EXAMPLE.test(value) || !looksRandom(value)) return false;
  // Real secret keys mix cases and digits; a hex digest (40 hex digits of SHA-1) does not.
  return /[a-z]/.test(value) && /[A-Z]/.test(value) && /[0-9]/.test(value) && !/^[0-9a-f]+$/i.test(value);
}

// HMAC keys that documentation signs its example tokens with; a token they verify protects nothing.
const EXAMPLE_JWT_KEYS = ['secret', 'your-256-bit-secret', 'your-secret-key', 'secret-key', 'key', 'mysecret'];

function isJwt(token: string): boolean {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  if (payload.startsWith(JWT_EXAMPLE_PAYLOAD)) return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
  } catch {
    return false;
  }
  if (typeof parsed !== 'object' || parsed === null || !('alg' in parsed)) return false;
  if (parsed.alg !== 'HS256') return true;
  return !EXAMPLE_JWT_KEYS.some((key) => createHmac('sha256', key).update(`${header}.${payload}`).digest('base64url') === signature);
}
