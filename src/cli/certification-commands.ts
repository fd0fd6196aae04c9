import { InvalidArgumentError, Option, type Command } from 'commander';
import { PACKAGE_VERSION } from '../version.js';
import { CommandError } from './password-input.js';

/** User agent of the CLI's requests, so the audit trail can distinguish them from other clients. */
const CLI_USER_AGENT = `portcullis-cli/${PACKAGE_VERSION}`;

/** Gateway URL when neither --url nor PORTCULLIS_URL is set: a gateway started by `portcullis serve` on this machine. */
export const DEFAULT_GATEWAY_URL = 'http://127.0.0.1:5000';

/** How long one HTTP request to the gateway may take, in milliseconds. */
const REQUEST_TIMEOUT_MS = 30_000;

export interface ConnectionOptions {
  url: string;
  json?: boolean;
}

/** An API error body as the gateway sends it under /api/v1. */
interface ApiErrorBody {
  error?: { code?: string; message?: string };
}

interface DecisionView {
  role: string;
  decision: string;
  comment: string;
  actor: string;
  createdAt: string;
}

interface StatusBody {
  repository: string;
  digest: string;
  tag?: string | null;
  state: string;
  policy: { name: string; mode: string };
  requiredRoles: string[];
  missingRoles: string[];
  rejectedRoles: string[];
  decisions: DecisionView[];
  lastRevocation: { reason: string; actor: string; createdAt: string } | null;
  expiresAt: string | null;
  scan?: { state: string; openFindings: number };
}

/**
 * Calls the management API of one gateway as the user or robot in
 * PORTCULLIS_USERNAME and PORTCULLIS_PASSWORD. It logs in once with GET
 * /token and Basic credentials, and sends the token as Bearer afterwards,
 * so the password is hashed once per command.
 */
export class GatewayClient {
  private token: string | null = null;

  constructor(
    private readonly baseUrl: URL,
    private readonly login: { username: string; password: string },
  ) {}

  /** Sends a request to /api/v1 and returns the JSON body; throws CommandError with the API's message on an error status. */
  async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const token = await this.fetchToken();
    const response = await this.send(new URL(`api/v1${path}`, this.baseUrl), {
      method,
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const parsed = await readJson(response);
    if (!response.ok) throw apiFailure(response, parsed);
    return parsed;
  }

  /**
   * Sends a GET to /api/v1 that accepts `accept`, and returns the response
   * with its body unread, for callers that stream it. Throws CommandError
   * with the API's message on an error status.
   */
  async open(path: string, accept: string): Promise<Response> {
    const token = await this.fetchToken();
    // The time limit covers the wait for the status line only, because an export may stream for longer.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`no response within ${REQUEST_TIMEOUT_MS / 1000} s`)), REQUEST_TIMEOUT_MS);
    let response: Response;
    try {
      response = await this.send(new URL(`api/v1${path}`, this.baseUrl), { method: 'GET', headers: { Authorization: `Bearer ${token}`, Accept: accept } }, controller.signal);
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok) throw apiFailure(response, await readJson(response));
    return response;
  }

  private async fetchToken(): Promise<string> {
    if (this.token !== null) return this.token;
    const basic = Buffer.from(`${this.login.username}:${this.login.password}`).toString('base64');
    const response = await this.send(new URL('token', this.baseUrl), { method: 'GET', headers: { Authorization: `Basic ${basic}`, Accept: 'application/json' } });
    const parsed = (await readJson(response)) as { token?: unknown; errors?: Array<{ message?: string }> } | null;
    if (!response.ok || typeof parsed?.token !== 'string') {
      const message = parsed?.errors?.[0]?.message ?? `HTTP ${response.status}`;
      throw new CommandError(`login as ${this.login.username} failed: ${message}`);
    }
    this.token = parsed.token;
    return this.token;
  }

  private async send(url: URL, init: RequestInit, signal: AbortSignal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)): Promise<Response> {
    try {
      const headers = new Headers(init.headers);
      headers.set('User-Agent', CLI_USER_AGENT);
      return await fetch(url, { ...init, headers, signal });
    } catch (error) {
      // fetch reports network failures as "fetch failed" with the socket error as its cause.
      let cause = String(error);
      if (error instanceof Error) cause = error.cause instanceof Error ? error.cause.message : error.message;
      throw new CommandError(`cannot reach the gateway at ${this.baseUrl.origin}: ${cause}; check --url or PORTCULLIS_URL`);
    }
  }
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CommandError(`the gateway returned HTTP ${response.status} with a body that is not JSON`);
  }
}

function apiFailure(response: Response, body: unknown): CommandError {
  const error = (body as ApiErrorBody | null)?.error;
  const message = error?.message ?? `HTTP ${response.status}`;
  return new CommandError(`${message} (HTTP ${response.status}${error?.code ? ` ${error.code}` : ''})`);
}

function parseGatewayUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CommandError(`invalid gateway URL "${text.slice(0, 200)}": use a URL such as ${DEFAULT_GATEWAY_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CommandError(`invalid gateway URL "${text.slice(0, 200)}": use http or https`);
  // A trailing slash makes relative paths resolve below a gateway served under a path prefix.
  if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
  return url;
}

export function clientOf(options: ConnectionOptions): GatewayClient {
  const username = process.env.PORTCULLIS_USERNAME;
  const password = process.env.PORTCULLIS_PASSWORD;
  if (!username || !password) {
    throw new CommandError('set PORTCULLIS_USERNAME and PORTCULLIS_PASSWORD to the login of a user or robot (robot$<name> and its secret)');
  }
  return new GatewayClient(parseGatewayUrl(options.url), { username, password });
}

/** Splits `<repository>@<digest>`; certification is bound to a digest, so a tag is an error. */
export function parseDigestReference(text: string): { repository: string; digest: string } {
  const at = text.lastIndexOf('@');
  if (at <= 0 || at === text.length - 1) {
    throw new CommandError(`expected <repository>@<digest>, got "${text.slice(0, 300)}": certification is bound to a digest; find it with \`portcullis status <repository>:<tag>\``);
  }
  return { repository: text.slice(0, at), digest: text.slice(at + 1) };
}

/** Splits `<repository>@<digest>` or `<repository>:<tag>`. */
export function parseImageReference(text: string): { repository: string; reference: string } {
  if (text.includes('@')) {
    const { repository, digest } = parseDigestReference(text);
    return { repository, reference: digest };
  }
  const colon = text.lastIndexOf(':');
  if (colon <= 0 || colon === text.length - 1 || text.slice(colon).includes('/')) {
    throw new CommandError(`expected <repository>:<tag> or <repository>@<digest>, got "${text.slice(0, 300)}"`);
  }
  return { repository: text.slice(0, colon), reference: text.slice(colon + 1) };
}

function parseEvidence(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError('expected a JSON object, such as \'{"report":"https://ci.example/run/42"}\'');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError('expected a JSON object, not an array or a single value');
  return value as Record<string, unknown>;
}

function listOrDash(values: readonly string[]): string {
  return values.length > 0 ? values.join(', ') : '-';
}

/** Formats a status for people: one fact a line, then the decisions that count. */
function formatStatus(status: StatusBody): string {
  const lines = [
    `repository:  ${status.repository}`,
    ...(status.tag ? [`tag:         ${status.tag}`] : []),
    `digest:      ${status.digest}`,
    `state:       ${status.state}`,
    `policy:      ${status.policy.name} (${status.policy.mode})`,
    `required:    ${listOrDash(status.requiredRoles)}`,
    `missing:     ${listOrDash(status.missingRoles)}`,
    ...(status.rejectedRoles.length > 0 ? [`rejected:    ${listOrDash(status.rejectedRoles)}`] : []),
    `expires:     ${status.expiresAt ?? '-'}`,
    ...(status.scan ? [`scan:        ${status.scan.state}${status.scan.openFindings > 0 ? ` (${status.scan.openFindings} open finding${status.scan.openFindings === 1 ? '' : 's'})` : ''}`] : []),
  ];
  if (status.lastRevocation) lines.push(`revoked:     ${status.lastRevocation.createdAt} by ${status.lastRevocation.actor}: ${status.lastRevocation.reason}`);
  lines.push(status.decisions.length > 0 ? 'decisions since the last revocation:' : 'decisions:   none');
  for (const decision of status.decisions) {
    lines.push(`  ${decision.createdAt}  ${decision.role.padEnd(8)}  ${decision.decision.padEnd(7)}  ${decision.actor}${decision.comment ? `  ${JSON.stringify(decision.comment)}` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Runs one command; an expected failure is one line on standard error with exit status 1. */
export async function runCommand(work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    process.exitCode = 1;
    if (error instanceof CommandError) {
      process.stderr.write(`portcullis: ${error.message}\n`);
      return;
    }
    throw error;
  }
}

export function connectionOptions(command: Command): Command {
  return command
    .addOption(new Option('--url <url>', 'URL of the gateway').env('PORTCULLIS_URL').default(DEFAULT_GATEWAY_URL))
    .option('--json', 'print the API response as JSON instead of text');
}

/**
 * Adds the reviewer commands `certify`, `status` and `revoke`. They call the
 * REST API of a running gateway, logged in as PORTCULLIS_USERNAME with
 * PORTCULLIS_PASSWORD.
 */
export function registerCertificationCommands(program: Command): void {
  connectionOptions(
    program
      .command('certify <image>')
      .description('approve or reject <repository>@<digest> for a role; needs certify:<role> (membership in the it, security or qa group)')
      .addOption(new Option('--role <role>', 'role to decide for').choices(['it', 'security', 'qa']).makeOptionMandatory())
      .addOption(new Option('--approve', 'approve the digest').conflicts('reject'))
      .addOption(new Option('--reject', 'reject the digest').conflicts('approve'))
      .option('--comment <text>', 'why, in words for the other reviewers', '')
      .option('--evidence <json>', 'a JSON object with links or results that back the decision', parseEvidence),
  ).action(async (image: string, options: ConnectionOptions & { role: string; approve?: boolean; reject?: boolean; comment: string; evidence?: Record<string, unknown> }) => {
    await runCommand(async () => {
      if (!options.approve && !options.reject) throw new CommandError('give --approve or --reject');
      const { repository, digest } = parseDigestReference(image);
      const decision = options.approve ? 'approve' : 'reject';
      const body = (await clientOf(options).call('POST', '/certifications', { repository, digest, role: options.role, decision, comment: options.comment, evidence: options.evidence ?? {} })) as StatusBody & {
        decision: DecisionView;
      };
      if (options.json) {
        process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${decision === 'approve' ? 'approved' : 'rejected'} ${repository}@${digest} for the ${options.role} role as ${body.decision.actor}\n`);
      process.stdout.write(`state: ${body.state}${body.missingRoles.length > 0 ? ` (missing: ${body.missingRoles.join(', ')})` : ''}\n`);
    });
  });

  connectionOptions(
    program
      .command('status <image>')
      .description('show the certification of <repository>:<tag> or <repository>@<digest>; needs pull on the repository, a certify permission or admin'),
  ).action(async (image: string, options: ConnectionOptions) => {
    await runCommand(async () => {
      const { repository, reference } = parseImageReference(image);
      const query = new URLSearchParams({ repository, reference });
      const body = (await clientOf(options).call('GET', `/certifications/status?${query.toString()}`)) as StatusBody;
      process.stdout.write(options.json ? `${JSON.stringify(body, null, 2)}\n` : formatStatus(body));
    });
  });

  connectionOptions(
    program
      .command('revoke <image>')
      .description('revoke every decision on <repository>@<digest>, so each required role must decide again; needs a certify permission or admin')
      .requiredOption('--reason <text>', 'why the certification is revoked'),
  ).action(async (image: string, options: ConnectionOptions & { reason: string }) => {
    await runCommand(async () => {
      const { repository, digest } = parseDigestReference(image);
      const body = (await clientOf(options).call('POST', '/certifications/revocations', { repository, digest, reason: options.reason })) as StatusBody & { revocation: { actor: string } };
      if (options.json) {
        process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
        return;
      }
      process.stdout.write(`revoked ${repository}@${digest} as ${body.revocation.actor}\nstate: ${body.state}\n`);
    });
  });
}
