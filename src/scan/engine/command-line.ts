import { isSecretValue, looksRandom } from './detectors.js';

/** A shell word after quote removal, or a command separator (`;`, `&&`, `|`, a newline). */
export interface ShellWord {
  text: string;
  /** 1-based line of the command string on which the word starts. */
  line: number;
  separator: boolean;
}

/**
 * Splits a shell command into words the way a POSIX shell does for simple commands: quotes and
 * backslashes are removed, a backslash-newline continues the line, and `;`, `&`, `|` and newlines
 * outside quotes separate commands. Expansions (`$VAR`, `$(…)`) are kept as written.
 */
export function splitShellWords(command: string): ShellWord[] {
  const words: ShellWord[] = [];
  let line = 1;
  let text = '';
  let started = false;
  let startLine = 1;

  const finishWord = (): void => {
    if (started) words.push({ text, line: startLine, separator: false });
    text = '';
    started = false;
  };
  const startWord = (): void => {
    if (!started) startLine = line;
    started = true;
  };

  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (c === '\\' && command[i + 1] === '\n') {
      i++;
      line++;
    } else if (c === '\\' && i + 1 < command.length) {
      startWord();
      i++;
      text += command[i];
    } else if (c === "'" || c === '"') {
      startWord();
      const close = closingQuote(command, i);
      const quoted = command.slice(i + 1, close);
      line += countNewlines(quoted);
      text += c === '"' ? quoted.replace(/\\([$`"\\\n])/g, '$1') : quoted;
      i = close;
    } else if (c === '\n' || c === ';' || c === '&' || c === '|') {
      finishWord();
      if (words.length > 0 && !words[words.length - 1]!.separator) words.push({ text: c, line, separator: true });
      if (c === '\n') line++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      finishWord();
    } else {
      startWord();
      text += c;
    }
  }
  finishWord();
  return words;
}

/** Returns the index of the quote that closes the one at `open`, or the end of the command when it is unclosed. */
function closingQuote(command: string, open: number): number {
  const quote = command[open]!;
  for (let i = open + 1; i < command.length; i++) {
    if (quote === '"' && command[i] === '\\') i++;
    else if (command[i] === quote) return i;
  }
  return command.length;
}

function countNewlines(text: string): number {
  let count = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) count++;
  return count;
}

/** Command-line options through which a program takes a password. */
interface PasswordOptions {
  /** Long options that take the password as `--name=value` or `--name value`. */
  long?: string[];
  /** Short options that take it as `-xvalue` or `-x value`. */
  short?: string[];
  /** Short options that take it only attached: `mysql -p value` prompts for the password and reads `value` as the database. */
  attached?: string[];
  /** Single-dash options followed by a separate value, as in `keytool -storepass value`. */
  single?: string[];
  /** The value is `user:password`, as curl takes it. */
  userPassword?: boolean;
  /** The value is `pass:password`, as OpenSSL takes it. Its other forms (`env:VAR`, `file:path`) name where the password is kept. */
  opensslSource?: boolean;
  /** A subcommand that must come first, as in `docker login -p value`, because `docker run -p` publishes a port. */
  subcommand?: string;
}

const MYSQL: PasswordOptions = { long: ['--password'], attached: ['-p'] };
const MONGO: PasswordOptions = { long: ['--password'], short: ['-p'] };
const REGISTRY_LOGIN: PasswordOptions = { long: ['--password'], short: ['-p'], subcommand: 'login' };
const LDAP: PasswordOptions = { short: ['-w'] };
const KEYTOOL: PasswordOptions = { single: ['-storepass', '-keypass', '-srcstorepass', '-deststorepass', '-srckeypass', '-destkeypass'] };

/** Programs whose password options are read, by the base name of the program. */
const PROGRAMS: ReadonlyMap<string, PasswordOptions> = new Map([
  ['curl', { long: ['--user', '--proxy-user'], short: ['-u', '-U'], userPassword: true }],
  ['wget', { long: ['--password', '--http-password', '--ftp-password', '--proxy-password'] }],
  ['sshpass', { short: ['-p'] }],
  ['redis-cli', { long: ['--pass'], short: ['-a'] }],
  ['sqlcmd', { short: ['-P'] }],
  ['bcp', { short: ['-P'] }],
  ['openssl', { single: ['-passin', '-passout', '-pass'], opensslSource: true }],
  ['keytool', KEYTOOL],
  ...['mysql', 'mysqldump', 'mysqladmin', 'mysqlimport', 'mysqlshow', 'mysqlcheck', 'mysqlpump', 'mariadb', 'mariadb-dump', 'mariadb-admin'].map((name) => [name, MYSQL] as const),
  ...['mongo', 'mongosh', 'mongodump', 'mongorestore', 'mongoexport', 'mongoimport'].map((name) => [name, MONGO] as const),
  ...['docker', 'podman', 'buildah', 'skopeo', 'nerdctl', 'helm', 'oras', 'crane'].map((name) => [name, REGISTRY_LOGIN] as const),
  ...['ldapsearch', 'ldapadd', 'ldapmodify', 'ldapdelete', 'ldappasswd', 'ldapwhoami'].map((name) => [name, LDAP] as const),
]);

const SHELLS = new Set(['sh', 'bash', 'ash', 'dash', 'zsh', 'ksh']);

/** A password found on a command line, with the index of the word that contains it. */
export interface CommandPassword {
  value: string;
  wordIndex: number;
}

/**
 * Finds passwords passed to known programs as options: `curl -u user:password`, `mysql -ppassword`,
 * `sshpass -p password`, `docker login -p password` and others in PROGRAMS. The script of
 * `sh -c 'script'` is read as a command of its own, with its passwords at the index of the script.
 * Values that are placeholders or too regular for looksRandom are left out.
 */
export function findCommandPasswords(words: readonly ShellWord[]): CommandPassword[] {
  const found: CommandPassword[] = [];
  let options: PasswordOptions | null = null;
  let awaitingSubcommand = false;

  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word.separator) {
      options = null;
      continue;
    }

    const program = PROGRAMS.get(baseName(word.text));
    if (program !== undefined) {
      options = program;
      awaitingSubcommand = program.subcommand !== undefined;
      continue;
    }
    if (word.text === '-c' && i > 0 && SHELLS.has(baseName(words[i - 1]!.text)) && i + 1 < words.length && !words[i + 1]!.separator) {
      for (const inner of findCommandPasswords(splitShellWords(words[i + 1]!.text))) found.push({ value: inner.value, wordIndex: i + 1 });
    }
    if (options === null) continue;
    if (awaitingSubcommand) {
      if (word.text === options.subcommand) awaitingSubcommand = false;
      continue;
    }

    const next = words[i + 1];
    const option = readOption(options, word.text, next !== undefined && !next.separator ? next.text : undefined);
    if (option === null) continue;
    const value = passwordOf(options, option.value);
    if (value !== null && isSecretValue(value) && looksRandom(value)) found.push({ value, wordIndex: i + option.consumed });
  }
  return found;
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Reads a password option at `word`; `consumed` is 1 when the value is the next word, 0 when it is part of `word`. */
function readOption(options: PasswordOptions, word: string, next: string | undefined): { value: string; consumed: number } | null {
  for (const name of options.long ?? []) {
    if (word.startsWith(`${name}=`)) return { value: word.slice(name.length + 1), consumed: 0 };
    if (word === name && next !== undefined) return { value: next, consumed: 1 };
  }
  for (const name of options.single ?? []) {
    if (word === name && next !== undefined) return { value: next, consumed: 1 };
  }
  for (const name of options.short ?? []) {
    if (word === name && next !== undefined) return { value: next, consumed: 1 };
    if (word.startsWith(name) && word.length > name.length) return { value: word.slice(name.length), consumed: 0 };
  }
  for (const name of options.attached ?? []) {
    if (word.startsWith(name) && word.length > name.length) return { value: word.slice(name.length), consumed: 0 };
  }
  return null;
}

function passwordOf(options: PasswordOptions, value: string): string | null {
  if (options.userPassword) {
    const colon = value.indexOf(':');
    return colon >= 0 ? value.slice(colon + 1) : null;
  }
  if (options.opensslSource) return value.startsWith('pass:') ? value.slice('pass:'.length) : null;
  return value;
}
