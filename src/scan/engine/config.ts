import { findCommandPasswords, splitShellWords } from './command-line.js';
import { isSecretName, isSecretValue, unquote, type DetectorId } from './detectors.js';
import { FindingCollector } from './redaction.js';
import { TextScanner } from './text-scanner.js';
import { ScanInputError, type Finding, type PreviewOptions } from './types.js';

/** `NAME=value` and `--name=value`, with the value quoted or up to the next shell separator. */
const ASSIGNMENT = /(?<![A-Za-z0-9_.-])(?:--?)?([A-Za-z_][A-Za-z0-9_.-]*)=("[^"]*"|'[^']*'|[^\s"'`;&|)]+)/g;
/** `--password value`: an option whose separate argument is the secret. */
const OPTION_ARGUMENT = /(?<![A-Za-z0-9_-])--(password|passwd|token|secret|api-key|apikey|access-key|secret-key|private-key|auth-token)\s+("[^"]*"|'[^']*'|[^\s"'`;&|)-][^\s"'`;&|)]*)/gi;
/** Dockerfile `ENV NAME value` (the legacy form without '='), as it appears in history. */
const LEGACY_ENV = /(?:^|\s)ENV\s+([A-Za-z_][A-Za-z0-9_]*)\s+([^\s=][^\n]*)$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Scans an image config for secrets: `Env`, `Cmd`, `Entrypoint` and `Labels` of its `config`, and
 * `history[].created_by`. Each value is checked by the token and key detectors, and assignments
 * to secret-looking names (`DB_PASSWORD=…`, `--token …`) are reported. Throws ScanInputError when
 * the config is not a JSON object.
 */
export function scanImageConfig(config: Buffer, options: PreviewOptions = {}): Finding[] {
  let document: unknown;
  try {
    document = JSON.parse(config.toString('utf8'));
  } catch {
    throw new ScanInputError('image config is not valid JSON');
  }
  if (!isObject(document)) throw new ScanInputError('image config is not a JSON object');

  const collector = new FindingCollector('config', options.previewKey);
  const settings = isObject(document['config']) ? document['config'] : {};

  const env = Array.isArray(settings['Env']) ? settings['Env'] : [];
  env.forEach((entry, i) => {
    if (typeof entry !== 'string') return;
    const path = `Env[${i}]`;
    const equals = entry.indexOf('=');
    if (equals > 0 && isSecretName(entry.slice(0, equals))) {
      const value = entry.slice(equals + 1);
      if (isSecretValue(value)) collector.add('config-env-secret', path, 1, value);
    }
    scanText(collector, path, entry);
  });

  for (const field of ['Cmd', 'Entrypoint'] as const) {
    const list = Array.isArray(settings[field]) ? settings[field] : [];
    list.forEach((argument, i) => {
      if (typeof argument !== 'string') return;
      scanCommand(collector, `${field}[${i}]`, argument, 'config-command-secret');
      // '--password' and its value are separate arguments in exec form.
      const next = list[i + 1];
      if (typeof next === 'string' && /^--?(?:password|passwd|token|secret|api-key|apikey|auth-token)$/i.test(argument) && isSecretValue(unquote(next))) {
        collector.add('config-command-secret', `${field}[${i + 1}]`, 1, unquote(next));
      }
    });
    // In exec form each argument is one word, so passwords of known programs ('mysql', '-pXYZ') are found across arguments.
    const words = list.map((argument) => ({ text: typeof argument === 'string' ? argument : '', line: 1, separator: false }));
    for (const password of findCommandPasswords(words)) collector.add('config-command-secret', `${field}[${password.wordIndex}]`, 1, password.value);
  }

  const labels = isObject(settings['Labels']) ? settings['Labels'] : {};
  for (const [name, value] of Object.entries(labels)) {
    if (typeof value !== 'string') continue;
    const path = `Labels.${name}`;
    if (isSecretName(name.replace(/[.]/g, '_')) && isSecretValue(value)) collector.add('config-label-secret', path, 1, value);
    scanText(collector, path, value);
  }

  const history = Array.isArray(document['history']) ? document['history'] : [];
  history.forEach((step, i) => {
    if (!isObject(step) || typeof step['created_by'] !== 'string') return;
    scanCommand(collector, `history[${i}].created_by`, step['created_by'], 'config-history-secret');
  });

  return collector.findings;
}

/**
 * Reports assignments to secret-looking names in a shell command or Dockerfile instruction, line
 * by line, and passwords given to known programs (`curl -u user:password`, `mysql -ppassword`),
 * then scans it as text.
 */
function scanCommand(collector: FindingCollector, path: string, command: string, detector: DetectorId): void {
  command.split('\n').forEach((line, index) => {
    for (const match of line.matchAll(ASSIGNMENT)) reportAssignment(collector, detector, path, index + 1, match[1]!, match[2]!);
    for (const match of line.matchAll(OPTION_ARGUMENT)) reportAssignment(collector, detector, path, index + 1, match[1]!, match[2]!);
    const legacy = LEGACY_ENV.exec(line);
    if (legacy) reportAssignment(collector, detector, path, index + 1, legacy[1]!, legacy[2]!.trim());
  });

  const words = splitShellWords(command);
  for (const password of findCommandPasswords(words)) collector.add(detector, path, words[password.wordIndex]!.line, password.value);

  scanText(collector, path, command);
}

function reportAssignment(collector: FindingCollector, detector: DetectorId, path: string, line: number, name: string, rawValue: string): void {
  const value = unquote(rawValue);
  if (isSecretName(name) && isSecretValue(value)) collector.add(detector, path, line, value);
}

/** Runs the text detectors (keys, tokens, URL credentials) over one config string. */
function scanText(collector: FindingCollector, path: string, value: string): void {
  const scanner = new TextScanner(collector, path, 'generic');
  scanner.writeText(Buffer.from(value, 'utf8').toString('latin1'));
  scanner.end();
}
