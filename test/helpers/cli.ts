import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Path of the CLI entry point. */
export const CLI_BIN = fileURLToPath(new URL('../../bin/portcullis.js', import.meta.url));

export interface CliResult {
  /** Exit status; null when the process was killed. */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Variables set for the command on top of the test process's environment. */
  env?: Record<string, string>;
  /** Text written to the command's standard input. */
  input?: string;
  /** Leaves out the test process's PORTCULLIS_* variables, so only `env` sets them. */
  withoutPortcullisEnv?: boolean;
  /** Time after which the command is killed, in milliseconds. */
  timeoutMs?: number;
}

/** Runs the portcullis CLI and collects its exit status and output. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const inherited = options.withoutPortcullisEnv ? Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PORTCULLIS_'))) : process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], { env: { ...inherited, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'], timeout: options.timeoutMs ?? 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}
