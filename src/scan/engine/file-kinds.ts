import { detectConfigLine, type ConfigSyntax } from './config-files.js';
import { CONFIG_PREFILTER, PREFILTER, decodePercent, detectTokens, isSecretName, isSecretValue, unquote, type Emit } from './detectors.js';

/** A credential file format, whose every line is checked by its rules. */
type CredentialFormat = 'dotenv' | 'npmrc' | 'git-credentials' | 'pypirc' | 'kubeconfig';

/** Text file format: a credential format, a configuration file syntax, or 'generic' for any other text. */
export type FileKind = 'generic' | CredentialFormat | ConfigSyntax;

/** Extensions of configuration files whose lines are `key: value`, `key = value` or `key value`. */
const KEY_VALUE_EXTENSION = /\.(?:ya?ml|properties|ini|cfg|conf|cnf|toml)$/;

/** Classifies a file by its path inside the layer. */
export function classifyPath(path: string): FileKind {
  const slash = path.lastIndexOf('/');
  const base = path.slice(slash + 1);
  const lower = base.toLowerCase();

  if (lower === '.env' || lower.startsWith('.env.') || lower.endsWith('.env')) return 'dotenv';
  if (lower === '.npmrc' || lower === 'npmrc') return 'npmrc';
  if (lower === '.git-credentials') return 'git-credentials';
  if (lower === '.pypirc') return 'pypirc';
  if (path.endsWith('.kube/config') || lower.includes('kubeconfig') || /(?:^|\/)etc\/kubernetes\/[^/]+\.conf$/.test(path)) return 'kubeconfig';

  if (lower === '.pgpass') return 'pgpass';
  if (lower === '.my.cnf') return 'mysql-options';
  if (lower === 'wp-config.php') return 'wp-config';
  // Django names its settings module settings.py; projects split it into local_settings.py, prod_settings.py or a settings/ package.
  if (lower === 'settings.py' || lower.endsWith('_settings.py') || /(?:^|\/)settings\/[^/]+\.py$/.test(path)) return 'python-settings';
  if (lower.endsWith('.json')) return 'json';
  // .NET keeps its XML settings in web.config and App.config.
  if (lower.endsWith('.xml') || lower.endsWith('.config')) return 'xml';
  if (KEY_VALUE_EXTENSION.test(lower)) return 'key-value';
  return 'generic';
}

/**
 * Returns the keyword pattern a line must match to be examined, or null when every line is.
 * Credential formats are short and have every line checked. Configuration files have the lines
 * with a secret-name word checked, and other text the lines with a token keyword.
 */
export function linePrefilter(kind: FileKind): RegExp | null {
  switch (kind) {
    case 'generic':
      return PREFILTER;
    case 'key-value':
    case 'json':
    case 'xml':
    case 'python-settings':
    case 'wp-config':
      return CONFIG_PREFILTER;
    default:
      return null;
  }
}

const DOTENV_LINE = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/;
const NPMRC_LINE = /^\s*(?:\/\/[^=\s]*:)?(_authToken|_auth|_password)\s*=\s*(.+)$/;
const PYPIRC_PASSWORD = /^\s*password\s*[:=]\s*(.+)$/i;
const KUBECONFIG_LINE = /^\s*(?:-\s+)?(token|password)\s*:\s*(.+)$/;
const URL_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^\s/@:]*:([^\s/@]+)@/i;

/** Reads a dotenv value: quoted up to its closing quote, or unquoted up to a ' #' comment. */
function dotenvValue(raw: string): string {
  const v = raw.trim();
  if (v.startsWith('"') || v.startsWith("'")) {
    const close = v.indexOf(v[0]!, 1);
    return close > 0 ? v.slice(1, close) : v.slice(1);
  }
  const comment = v.search(/\s#/);
  return comment >= 0 ? v.slice(0, comment).trim() : v;
}

/** Runs the rules of a credential file format or configuration syntax on one line, and the token detectors. */
export function detectFormatLine(kind: Exclude<FileKind, 'generic'>, line: string, emit: Emit): void {
  switch (kind) {
    case 'dotenv': {
      // The token detectors go first, so a value of a known format (an AWS secret key, a GitHub token) gets that detector and not dotenv-secret.
      detectTokens(line, emit);
      const m = DOTENV_LINE.exec(line);
      if (m && isSecretName(m[1]!)) {
        const value = dotenvValue(m[2]!);
        if (isSecretValue(value)) emit('dotenv-secret', value);
      }
      break;
    }
    case 'npmrc': {
      const m = NPMRC_LINE.exec(line);
      if (m) {
        const value = unquote(m[2]!);
        if (isSecretValue(value)) emit('npmrc-auth', value);
      }
      break;
    }
    case 'git-credentials': {
      const m = URL_PASSWORD.exec(line.trim());
      if (m && isSecretValue(decodePercent(m[1]!))) emit('git-credentials', m[1]!);
      break;
    }
    case 'pypirc': {
      const m = PYPIRC_PASSWORD.exec(line);
      if (m) {
        const value = unquote(m[1]!);
        if (isSecretValue(value)) emit('pypirc-password', value);
      }
      break;
    }
    case 'kubeconfig': {
      const m = KUBECONFIG_LINE.exec(line);
      if (m) {
        const value = unquote(m[2]!);
        if (isSecretValue(value)) emit(m[1] === 'token' ? 'kubeconfig-token' : 'kubeconfig-password', value);
      }
      break;
    }
    default:
      // The token detectors go first, so a value of a known format gets that detector and not config-file-secret.
      detectTokens(line, emit);
      detectConfigLine(kind, line, emit);
      return;
  }
  detectTokens(line, emit);
}
