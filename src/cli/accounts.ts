import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Command } from 'commander';
import pino from 'pino';
import { auditSettingsOf, createAuditSink } from '../audit/setup.js';
import { AccountConflictError, AccountNotFoundError, InvalidAccountInputError } from '../auth/account-errors.js';
import { AccountService, type Actor, type UserView } from '../auth/accounts.js';
import type { Config } from '../config.js';
import { ANONYMOUS, type RequestContext } from '../context.js';
import { createLogger } from '../logger.js';
import { withCommandDatabase } from './database.js';
import { CommandError, readNewPassword } from './password-input.js';

interface CommandSession {
  accounts: AccountService;
  actor: Actor;
}

/** Returns the name that account changes from the command line are recorded under: `cli:<operating system user>`. */
function commandActorName(): string {
  try {
    return `cli:${os.userInfo().username}`;
  } catch {
    // A container user without a passwd entry has no name.
    return `cli:uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

function isExpectedFailure(error: unknown): error is Error {
  return error instanceof CommandError || error instanceof InvalidAccountInputError || error instanceof AccountNotFoundError || error instanceof AccountConflictError;
}

/**
 * Runs one account command against the database. An expected failure (bad
 * input, unknown name, conflict) is one line on standard error with exit
 * status 1; anything else is logged with its stack. Logs go to standard
 * error, so standard output carries only the command's result, such as a
 * robot secret.
 */
async function runAccountCommand(loadConfig: () => Config, work: (session: CommandSession) => Promise<void>): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel, pino.destination(2));
  const name = commandActorName();
  const context: RequestContext = { requestId: randomUUID(), identity: ANONYMOUS, principal: null, clientAddress: '', userAgent: 'portcullis-cli', logger, system: name };
  const actor: Actor = { context, name };

  try {
    await withCommandDatabase(config, logger, (db) => work({ accounts: new AccountService({ db, events: createAuditSink(db, logger, auditSettingsOf(config), { logEvents: false }) }), actor }));
  } catch (error) {
    process.exitCode = 1;
    if (isExpectedFailure(error)) {
      process.stderr.write(`portcullis: ${error.message}\n`);
      return;
    }
    logger.error({ err: error }, 'command failed');
  }
}

function formatDate(date: Date | null): string {
  return date === null ? '-' : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Formats rows as columns separated by two spaces, each as wide as its widest cell. */
function formatTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ')).join('\n');
}

function userTable(users: UserView[]): string {
  const header = ['USERNAME', 'STATUS', 'CREATED', 'GROUPS'];
  const rows = users.map((user) => [user.username, user.disabled ? 'disabled' : 'enabled', formatDate(user.createdAt), user.groups.join(',') || '-']);
  return formatTable([header, ...rows]);
}

function parseExpiry(text: string | undefined): Date | null {
  if (text === undefined) return null;
  // Date.parse accepts forms such as "tomorrow" in some engines, so the ISO 8601 shape is checked first.
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text)) {
    throw new CommandError(`invalid --expires "${text.slice(0, 100)}": use an ISO 8601 date or date and time with a time zone, such as 2030-01-31 or 2030-01-31T12:00:00Z`);
  }
  return new Date(text);
}

/**
 * Adds the `user`, `robot` and `grant` commands. They change accounts in the
 * database directly, without a running gateway, for the first setup and for
 * recovery when no administrator can log in.
 */
export function registerAccountCommands(program: Command, loadConfig: () => Config): void {
  const user = program.command('user').description('create, list, disable users and set their passwords');

  user
    .command('add <name>')
    .description('create a user; the password is prompted for, or read from standard input with --password-stdin')
    .option('-g, --group <group...>', 'add the user to these groups (repeatable), for example admins', [])
    .option('--password-stdin', 'read the password from standard input instead of prompting')
    .action(async (name: string, options: { group: string[]; passwordStdin?: boolean }) => {
      await runAccountCommand(loadConfig, async ({ accounts, actor }) => {
        const password = await readNewPassword(options.passwordStdin === true);
        const created = await accounts.createUser(actor, { username: name, password, groups: options.group });
        process.stdout.write(`created user ${created.username}${created.groups.length > 0 ? ` in groups ${created.groups.join(', ')}` : ''}\n`);
      });
    });

  user
    .command('list')
    .description('list every user with its status and groups')
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { json?: boolean }) => {
      await runAccountCommand(loadConfig, async ({ accounts }) => {
        const users = await accounts.listUsers();
        process.stdout.write(options.json ? `${JSON.stringify({ users }, null, 2)}\n` : `${userTable(users)}\n`);
      });
    });

  user
    .command('passwd <name>')
    .description("set a user's password; refresh tokens issued before are no longer renewed")
    .option('--password-stdin', 'read the password from standard input instead of prompting')
    .action(async (name: string, options: { passwordStdin?: boolean }) => {
      await runAccountCommand(loadConfig, async ({ accounts, actor }) => {
        const password = await readNewPassword(options.passwordStdin === true);
        await accounts.changePassword(actor, name, password);
        process.stdout.write(`changed the password of user ${name}\n`);
      });
    });

  user
    .command('disable <name>')
    .description('disable a user: it can no longer log in, and its tokens stop working')
    .action(async (name: string) => {
      await runAccountCommand(loadConfig, async ({ accounts, actor }) => {
        await accounts.disableUser(actor, name);
        process.stdout.write(`disabled user ${name}\n`);
      });
    });

  const robot = program.command('robot').description('create and revoke robot accounts');

  robot
    .command('add <name>')
    .description('create a robot account and print its secret once on standard output')
    .option('--expires <time>', 'when the robot stops authenticating, as an ISO 8601 date or date and time (default: never)')
    .action(async (name: string, options: { expires?: string }) => {
      await runAccountCommand(loadConfig, async ({ accounts, actor }) => {
        const expiresAt = parseExpiry(options.expires);
        const { robot: created, secret } = await accounts.createRobot(actor, { name, expiresAt });
        process.stderr.write(
          `created robot ${created.name}${created.expiresAt ? `, expiring ${formatDate(created.expiresAt)}` : ''}. ` +
            `It logs in as ${created.loginName} with the secret below, which is shown only once:\n`,
        );
        process.stdout.write(`${secret}\n`);
      });
    });

  robot
    .command('revoke <name>')
    .description('revoke a robot account: it can no longer log in, and its tokens stop working')
    .action(async (name: string) => {
      await runAccountCommand(loadConfig, async ({ accounts, actor }) => {
        await accounts.revokeRobot(actor, name);
        process.stdout.write(`revoked robot ${name}\n`);
      });
    });

  program
    .command('grant <subject> <pattern> <permission...>')
    .description('grant permissions on the repositories that match a pattern, for example: grant user:alice "team-a/**" pull push')
    .action(async (subject: string, pattern: string, permissions: string[]) => {
      await runAccountCommand(loadConfig, async ({ accounts, actor }) => {
        const grant = await accounts.createGrant(actor, { subject, repositories: pattern, permissions });
        process.stdout.write(`created grant ${grant.id}: ${grant.subject} may ${grant.permissions.join(', ')} on ${grant.repositories}\n`);
      });
    });
}
