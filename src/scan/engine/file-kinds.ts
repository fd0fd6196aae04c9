import { detectTokens, isSecretName, isSecretValue, unquote, type Emit } from './detectors.js';

/** Text file format: a credential format has every line checked by its rules; 'generic' has only prefiltered lines checked. */
export type FileKind = 'generic' | 'dotenv' | 'npmrc' | 'git-credentials' | 'pypirc' | 'kubeconfig';

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
  return 'generic';
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

/** Runs the rules of a credential file format on one line, then the token detectors. */
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
      if (m && isSecretValue(decodeURIComponentSafe(m[1]!))) emit('git-credentials', m[1]!);
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
  }
  detectTokens(line, emit);
}

function decodeURIComponentSafe(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
