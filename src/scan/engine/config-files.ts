import { isSecretName, isSecretValue, looksLikePassword, looksRandom, type Emit } from './detectors.js';

/**
 * Syntax of a configuration file, chosen by its name. Values in these files are reported when
 * their key has a secret-looking name and the value passes looksLikePassword, because such
 * files also hold settings about secrets and sample values. In '.pgpass' and '.my.cnf' every
 * password is a credential, so there isSecretValue and looksRandom suffice.
 */
export type ConfigSyntax = 'key-value' | 'json' | 'xml' | 'python-settings' | 'wp-config' | 'pgpass' | 'mysql-options';

/**
 * `key: value`, `key = value` and `key value` lines of YAML, INI, TOML, Java properties and
 * `.conf` files, with an optional YAML list dash and quotes around the key.
 */
const KEY_VALUE_LINE = /^\s*(?:-\s+)?(["']?)([A-Za-z_][A-Za-z0-9_.-]*)\1\s*(?:[:=]|\s)\s*(.*)$/;
/** A JSON member whose value is a string, with the escapes of the value kept. */
const JSON_MEMBER = /"([A-Za-z_][A-Za-z0-9_.-]*)"\s*:\s*"((?:[^"\\]|\\.)*)"/g;
/** An XML element with only text inside, such as `<password>…</password>` or `<db:password>…</db:password>`. */
const XML_ELEMENT = /<((?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*))(?:\s[^>]*)?>([^<]+)<\/\1>/g;
/** An XML attribute, such as `password="…"`. */
const XML_ATTRIBUTE = /\s((?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*))\s*=\s*(["'])(.*?)\3/g;
/** A name and its value in separate attributes: .NET `<add key="DbPassword" value="…"/>`, Spring `<property name="password" value="…"/>`. */
const XML_NAMED_VALUE = /\b(?:key|name)\s*=\s*(["'])([^"']*)\1\s+value\s*=\s*(["'])(.*?)\3/g;
/** `Password=…` or `Pwd=…` in an ADO.NET, JDBC or ODBC connection string. */
const CONNECTION_STRING_PASSWORD = /(?:^|[;"'\s])(?:Password|Pwd)\s*=\s*([^;"'<>\s]+)/gi;
/** A Python assignment of a string literal, such as Django's `SECRET_KEY = '…'`. */
const PYTHON_ASSIGNMENT = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*[rbuRBU]?(["'])(.*?)\2/;
/** A string key and string value in a Python dict, such as `'PASSWORD': '…'` in Django's `DATABASES`. */
const PYTHON_DICT_ENTRY = /(["'])([A-Za-z_][\w.-]*)\1\s*:\s*[rbuRBU]?(["'])(.*?)\3/g;
/** WordPress `define('DB_PASSWORD', '…')`. */
const PHP_DEFINE = /define\(\s*(["'])([A-Za-z_][A-Za-z0-9_]*)\1\s*,\s*(["'])(.*?)\3\s*\)/g;
/** The keys and salts of wp-config.php, which sign WordPress login cookies. */
const WORDPRESS_KEY = /^(?:AUTH|SECURE_AUTH|LOGGED_IN|NONCE)_(?:KEY|SALT)$/;

/** Runs the rules of one configuration syntax on a line and reports each value found as config-file-secret. */
export function detectConfigLine(syntax: ConfigSyntax, line: string, emit: Emit): void {
  switch (syntax) {
    case 'key-value':
      detectKeyValue(line, emit, looksLikePassword);
      detectConnectionString(line, emit);
      return;
    case 'mysql-options':
      detectKeyValue(line, emit, isCredential);
      return;
    case 'json':
      for (const m of line.matchAll(JSON_MEMBER)) reportIfSecret(emit, m[1]!, decodeJsonString(m[2]!));
      detectConnectionString(line, emit);
      return;
    case 'xml':
      detectXml(line, emit);
      return;
    case 'python-settings': {
      const assignment = PYTHON_ASSIGNMENT.exec(line);
      if (assignment) reportIfSecret(emit, assignment[1]!, assignment[3]!);
      for (const m of line.matchAll(PYTHON_DICT_ENTRY)) reportIfSecret(emit, m[2]!, m[4]!);
      return;
    }
    case 'wp-config':
      for (const m of line.matchAll(PHP_DEFINE)) {
        if ((isSecretName(m[2]!) || WORDPRESS_KEY.test(m[2]!)) && looksLikePassword(m[4]!)) emit('config-file-secret', m[4]!);
      }
      return;
    case 'pgpass': {
      const password = pgpassPassword(line);
      if (password !== null && isCredential(password)) emit('config-file-secret', password);
      return;
    }
  }
}

function isCredential(value: string): boolean {
  return isSecretValue(value) && looksRandom(value);
}

/**
 * Reports a value when its key is secret-looking. Dots (`spring.datasource.password`) and case
 * changes (`passwordFile`) count as word breaks, so that the exclusions for names such as
 * `PASSWORD_FILE` apply to every spelling.
 */
function reportIfSecret(emit: Emit, name: string, value: string, accept: (value: string) => boolean = looksLikePassword): void {
  const snakeCase = name.replace(/\./g, '_').replace(/([a-z0-9])([A-Z])/g, '$1_$2');
  if (isSecretName(snakeCase) && accept(value)) emit('config-file-secret', value);
}

function detectKeyValue(line: string, emit: Emit, accept: (value: string) => boolean): void {
  const m = KEY_VALUE_LINE.exec(line);
  if (m) reportIfSecret(emit, m[2]!, keyValueValue(m[3]!), accept);
}

/** Reads a value: quoted up to its closing quote, or unquoted up to a ' #' or ' ;' comment and without a trailing ';' or ','. */
function keyValueValue(raw: string): string {
  const v = raw.trim();
  if (v.startsWith('"') || v.startsWith("'")) {
    const close = v.indexOf(v[0]!, 1);
    return close > 0 ? v.slice(1, close) : v.slice(1);
  }
  const comment = v.search(/\s[#;]/);
  const value = comment >= 0 ? v.slice(0, comment).trim() : v;
  return value.replace(/[;,]$/, '');
}

function detectConnectionString(line: string, emit: Emit): void {
  for (const m of line.matchAll(CONNECTION_STRING_PASSWORD)) if (looksLikePassword(m[1]!)) emit('config-file-secret', m[1]!);
}

function detectXml(line: string, emit: Emit): void {
  for (const m of line.matchAll(XML_ELEMENT)) reportIfSecret(emit, m[2]!, decodeXmlEntities(m[3]!.trim()));
  for (const m of line.matchAll(XML_ATTRIBUTE)) reportIfSecret(emit, m[2]!, decodeXmlEntities(m[4]!));
  for (const m of line.matchAll(XML_NAMED_VALUE)) reportIfSecret(emit, m[2]!, decodeXmlEntities(m[4]!));
  detectConnectionString(line, emit);
}

function decodeJsonString(escaped: string): string {
  try {
    return JSON.parse(`"${escaped}"`) as string;
  } catch {
    return escaped;
  }
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeXmlEntities(value: string): string {
  return value.replace(/&(amp|lt|gt|quot|apos);/g, (_, name: string) => XML_ENTITIES[name]!);
}

/**
 * Returns the password field of a `.pgpass` line, `hostname:port:database:username:password`,
 * where '\:' and '\\' escape a colon and a backslash, or null for a comment or a malformed line.
 */
function pgpassPassword(line: string): string | null {
  if (line.trimStart().startsWith('#')) return null;
  const fields: string[] = [];
  let field = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      i++;
      field += line[i];
    } else if (c === ':' && fields.length < 4) {
      fields.push(field);
      field = '';
    } else {
      field += c;
    }
  }
  fields.push(field);
  return fields.length === 5 ? fields[4]! : null;
}
