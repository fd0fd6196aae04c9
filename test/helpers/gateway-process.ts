import { spawn, type ChildProcess } from 'node:child_process';
import { CLI_BIN } from './cli.js';

/** A gateway running as a child process, as `portcullis serve` runs in production. */
export interface GatewayProcess {
  child: ChildProcess;
  url: string;
}

/**
 * Starts `portcullis serve` on a random port with the given database, data
 * directory and extra environment; resolves with its URL once it listens.
 */
export function startGatewayProcess(databaseUrl: string, dataDir: string, env: Record<string, string>): Promise<GatewayProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, 'serve'], {
      env: { ...process.env, DATABASE_URL: databaseUrl, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Portcullis is listening on (http:\/\/[^"\s]+)/.exec(output);
      if (match?.[1]) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({ child, url: match[1] });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.resume();
    child.once('exit', (code) => reject(new Error(`the gateway exited with ${code} before it listened: ${output.slice(-2000)}`)));
  });
}

/** Kills a gateway process with SIGKILL, as a crash would, and waits until it is gone. */
export async function killGatewayProcess(gateway: GatewayProcess): Promise<void> {
  if (gateway.child.exitCode !== null || gateway.child.signalCode !== null) return;
  const exited = new Promise((resolve) => gateway.child.once('exit', resolve));
  gateway.child.kill('SIGKILL');
  await exited;
}
