import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Option, type Command } from 'commander';
import { clientOf, connectionOptions, runCommand, type ConnectionOptions } from './certification-commands.js';
import { CommandError } from './password-input.js';

/** Filter options of `audit query` and `audit export`, named as the query parameters of GET /api/v1/audit/events. */
const FILTER_OPTIONS = [
  ['--repository <name>', 'repository', 'only events of this repository'],
  ['--repository-prefix <prefix>', 'repositoryPrefix', 'only repositories whose name starts with this, such as team-a/'],
  ['--digest <digest>', 'digest', 'only events of this digest'],
  ['--tag <tag>', 'tag', 'only events that name this tag'],
  ['--actor <subject>', 'actor', 'only events of this user, robot or system component'],
  ['--action <actions>', 'action', 'only these actions, comma-separated, such as manifest.pull,blob.pull'],
  ['--decision <decision>', 'decision', 'only pulls with this decision: allowed, denied or would-deny'],
  ['--client-address <address>', 'clientAddress', 'only events from this IP address'],
  ['--from <time>', 'from', 'earliest time, inclusive, in RFC 3339 such as 2024-05-01T00:00:00Z'],
  ['--to <time>', 'to', 'time to stop at, exclusive, in RFC 3339'],
] as const;

type FilterOptions = Partial<Record<(typeof FILTER_OPTIONS)[number][1], string>>;

interface EventView {
  seq: number;
  occurredAt: string;
  action: string;
  actor: { kind: string; subject: string | null };
  clientAddress: string | null;
  repository: string | null;
  reference: string | null;
  digest: string | null;
  decision: string | null;
  reason: string | null;
  details: Record<string, unknown>;
}

interface PullerView {
  actor: { kind: string; subject: string | null };
  pulls: number;
  firstAt: string;
  lastAt: string;
  clientAddresses: string[];
}

interface PullsBody {
  pulls: number;
  actors: PullerView[];
  eventsTruncated: boolean;
}

interface ExposureBody extends PullsBody {
  status: string;
  exposureEndsAt: string | null;
  incidents: Array<{ occurredAt: string; kind: string; actor: string | null; role: string | null; reason: string | null }>;
  pulledAfter: PullerView[];
}

interface VerifyBody {
  ok: boolean;
  checked: number;
  firstSeq: number | null;
  lastSeq: number | null;
  problem: { seq: number; kind: string; message: string } | null;
}

function withFilters(command: Command): Command {
  for (const [flags, , description] of FILTER_OPTIONS) command.option(flags, description);
  return command;
}

/** Returns the query string of the filters that were given. */
function filterQuery(options: FilterOptions, extra: Record<string, string | undefined> = {}): string {
  const query = new URLSearchParams();
  for (const [, name] of FILTER_OPTIONS) {
    const value = options[name];
    if (value !== undefined) query.set(name, value);
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value !== undefined) query.set(name, value);
  }
  return query.toString();
}

/** Formats an actor as its subject, which the --actor filter takes, with its kind in parentheses. */
function actorText(actor: { kind: string; subject: string | null }): string {
  return actor.subject === null ? actor.kind : `${actor.subject} (${actor.kind})`;
}

/** Maximum length of the details text shown for an event without a repository. */
const MAX_DETAILS_TEXT = 160;

/** Formats one event as a line: time, number, action, actor, address, repository, reference or digest, decision and reason. */
function eventLine(event: EventView): string {
  let target = event.repository === null ? '-' : `${event.repository}${event.reference ? `:${event.reference}` : ''}${event.digest ? `@${event.digest}` : ''}`;
  // Account, policy and login events have no repository; their details describe the change.
  if (event.repository === null && Object.keys(event.details).length > 0) {
    const details = JSON.stringify(event.details);
    target = details.length > MAX_DETAILS_TEXT ? `${details.slice(0, MAX_DETAILS_TEXT - 1)}…` : details;
  }
  const decision = event.decision === null ? '' : `  ${event.decision}${event.reason ? ` (${event.reason})` : ''}`;
  return `${event.occurredAt}  #${event.seq}  ${event.action}  ${actorText(event.actor)}  ${event.clientAddress ?? '-'}  ${target}${decision}`;
}

function pullerLines(actors: readonly PullerView[]): string[] {
  return actors.map((actor) => `  ${actorText(actor.actor)}: ${actor.pulls} pull${actor.pulls === 1 ? '' : 's'}, ${actor.firstAt} to ${actor.lastAt}, from ${actor.clientAddresses.join(', ') || '-'}`);
}

function printJson(body: unknown): void {
  process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
}

/**
 * Adds `audit query`, `audit export`, `audit verify`, `audit pulls` and
 * `audit exposure`. They call the REST API of a running gateway, logged in
 * as PORTCULLIS_USERNAME with PORTCULLIS_PASSWORD, which needs audit:read
 * (membership of the auditors group). Returns the `audit` command, so
 * that other audit commands can be added to it.
 */
export function registerAuditCommands(program: Command): Command {
  const audit = program.command('audit').description('query, export and verify the audit trail of a running gateway; needs audit:read (the auditors group)');

  connectionOptions(
    withFilters(audit.command('query').description('print one page of matching events, newest first'))
      .option('--limit <count>', 'events per page, 1 to 1000', '100')
      .option('--cursor <cursor>', 'the next cursor that the previous page printed'),
  ).action(async (options: ConnectionOptions & FilterOptions & { limit: string; cursor?: string }) => {
    await runCommand(async () => {
      const query = filterQuery(options, { limit: options.limit, cursor: options.cursor });
      const body = (await clientOf(options).call('GET', `/audit/events?${query}`)) as { events: EventView[]; nextCursor: string | null };
      if (options.json) {
        printJson(body);
        return;
      }
      for (const event of body.events) process.stdout.write(`${eventLine(event)}\n`);
      if (body.events.length === 0) process.stdout.write('no matching events\n');
      if (body.nextCursor !== null) process.stdout.write(`more: --cursor ${body.nextCursor}\n`);
    });
  });

  connectionOptions(
    withFilters(audit.command('export').description('write every matching event as CSV or NDJSON, newest first, streaming'))
      .addOption(new Option('--format <format>', 'csv or ndjson').choices(['csv', 'ndjson']).makeOptionMandatory())
      .option('--output <file>', 'file to write (replaced if it exists); standard output when unset'),
  ).action(async (options: ConnectionOptions & FilterOptions & { format: 'csv' | 'ndjson'; output?: string }) => {
    await runCommand(async () => {
      const accept = options.format === 'csv' ? 'text/csv' : 'application/x-ndjson';
      const response = await clientOf(options).open(`/audit/events?${filterQuery(options)}`, accept);
      if (!response.body) throw new CommandError('the gateway returned an export without a body');
      const destination = options.output === undefined ? process.stdout : createWriteStream(options.output);
      try {
        await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), destination, { end: options.output !== undefined });
      } catch (error) {
        throw new CommandError(`the export stopped before its end: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
  });

  connectionOptions(
    audit
      .command('verify')
      .description('recompute the hash chain and report the first missing or altered event; exits with status 1 when the chain is broken')
      .option('--from <time>', 'first time to check, inclusive, in RFC 3339')
      .option('--to <time>', 'time to stop at, exclusive, in RFC 3339'),
  ).action(async (options: ConnectionOptions & { from?: string; to?: string }) => {
    await runCommand(async () => {
      const query = new URLSearchParams();
      if (options.from !== undefined) query.set('from', options.from);
      if (options.to !== undefined) query.set('to', options.to);
      const body = (await clientOf(options).call('GET', `/audit/verify?${query.toString()}`)) as VerifyBody;
      if (options.json) printJson(body);
      else if (body.ok) process.stdout.write(`ok: ${body.checked} events checked${body.firstSeq === null ? '' : ` (#${body.firstSeq} to #${body.lastSeq})`}\n`);
      else process.stdout.write(`broken at event #${body.problem?.seq} (${body.problem?.kind}): ${body.problem?.message}\n${body.checked} events checked before it\n`);
      if (!body.ok) process.exitCode = 1;
    });
  });

  connectionOptions(
    audit
      .command('pulls')
      .description('show who pulled a digest and when')
      .requiredOption('--digest <digest>', 'the manifest or blob digest')
      .option('--repository <name>', 'only pulls from this repository'),
  ).action(async (options: ConnectionOptions & { digest: string; repository?: string }) => {
    await runCommand(async () => {
      const query = new URLSearchParams({ digest: options.digest, ...(options.repository === undefined ? {} : { repository: options.repository }) });
      const body = (await clientOf(options).call('GET', `/audit/pulls?${query.toString()}`)) as PullsBody;
      if (options.json) {
        printJson(body);
        return;
      }
      process.stdout.write(`${body.pulls} pull${body.pulls === 1 ? '' : 's'} of ${options.digest}\n`);
      for (const line of pullerLines(body.actors)) process.stdout.write(`${line}\n`);
    });
  });

  connectionOptions(
    audit
      .command('exposure')
      .description('show who pulled a digest before its first revocation or rejection')
      .requiredOption('--repository <name>', 'the repository')
      .requiredOption('--digest <digest>', 'the manifest digest'),
  ).action(async (options: ConnectionOptions & { repository: string; digest: string }) => {
    await runCommand(async () => {
      const query = new URLSearchParams({ repository: options.repository, digest: options.digest });
      const body = (await clientOf(options).call('GET', `/audit/exposure?${query.toString()}`)) as ExposureBody;
      if (options.json) {
        printJson(body);
        return;
      }
      const lines = [`status: ${body.status}`];
      for (const incident of body.incidents) {
        lines.push(`${incident.kind}: ${incident.occurredAt} by ${incident.actor ?? '-'}${incident.role ? ` (${incident.role})` : ''}${incident.reason ? `: ${incident.reason}` : ''}`);
      }
      lines.push(body.exposureEndsAt === null ? `pulls so far: ${body.pulls}` : `pulls before ${body.exposureEndsAt}: ${body.pulls}`);
      lines.push(...pullerLines(body.actors));
      if (body.pulledAfter.length > 0) {
        lines.push('pulled after that, with uncertified access:');
        lines.push(...pullerLines(body.pulledAfter));
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
  });

  return audit;
}
