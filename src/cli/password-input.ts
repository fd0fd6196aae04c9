import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';

/** A failure of a command that is reported as one line on standard error, without a stack. */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandError';
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Prompts on standard error and reads one line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  process.stderr.write(question);
  // Readline echoes what is typed to its output; this output discards it.
  const discard = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const reader = createInterface({ input: process.stdin, output: discard, terminal: true });
  try {
    return await new Promise<string>((resolve, reject) => {
      reader.on('SIGINT', () => reject(new CommandError('cancelled')));
      reader.on('close', () => reject(new CommandError('no password entered')));
      reader.question('', resolve);
    });
  } finally {
    process.stderr.write('\n');
    reader.close();
  }
}

/**
 * Reads a new password: all of standard input (without the final line break)
 * with `fromStdin`, else twice from a terminal prompt that does not echo.
 * A password is never taken from the command line, where other users could
 * read it in the process list and where it would stay in the shell history.
 */
export async function readNewPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) return (await readAll(process.stdin)).replace(/\r?\n$/, '');
  if (!process.stdin.isTTY) throw new CommandError('standard input is not a terminal, so there is no prompt for the password: pipe it in with --password-stdin');

  const password = await promptHidden('New password: ');
  const repeated = await promptHidden('Repeat the new password: ');
  if (password !== repeated) throw new CommandError('the two passwords differ; nothing was changed');
  return password;
}
