import type { Knex } from 'knex';
import type { RequestContext } from '../context.js';
import type { RegistryEventSink } from '../audit/registry-events.js';
import type { InputProblem } from '../auth/account-errors.js';
import { databaseErrorKind } from '../db/errors.js';
import { ImportInputError, ImportResourceNotFoundError, UpstreamExistsError } from './errors.js';
import { normalizeHost } from './references.js';

/** Maximum length of an upstream's username or password, in characters. */
const MAX_CREDENTIAL_LENGTH = 4096;

/** An allowlisted upstream as the API shows it: whether it has credentials, never the credentials themselves. */
export interface UpstreamView {
  host: string;
  insecureHttp: boolean;
  hasCredentials: boolean;
  /** Username of the stored credentials, or null without credentials. */
  username: string | null;
  createdBy: string;
  createdAt: string;
}

/** Login for an upstream registry. */
export interface UpstreamCredentials {
  username: string;
  password: string;
}

/** An allowlisted upstream with what a connection to it needs. */
export interface UpstreamSettings {
  host: string;
  insecureHttp: boolean;
  credentials: UpstreamCredentials | null;
}

export interface CreateUpstreamInput {
  host: string;
  credentials?: UpstreamCredentials | undefined;
  insecureHttp?: boolean | undefined;
}

interface UpstreamRow {
  host: string;
  username: string | null;
  password: string | null;
  insecure_http: boolean;
  created_by: string;
  created_at: Date;
}

function viewOf(row: UpstreamRow): UpstreamView {
  return {
    host: row.host,
    insecureHttp: row.insecure_http,
    hasCredentials: row.username !== null,
    username: row.username,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
  };
}

function credentialProblems(credentials: UpstreamCredentials): InputProblem[] {
  const problems: InputProblem[] = [];
  if (credentials.username.length === 0 || credentials.username.length > MAX_CREDENTIAL_LENGTH) {
    problems.push({ field: 'credentials.username', message: `expected 1 to ${MAX_CREDENTIAL_LENGTH} characters` });
  }
  // A colon would end the username early in a Basic Authorization header.
  if (credentials.username.includes(':')) problems.push({ field: 'credentials.username', message: 'must not contain ":"' });
  if (credentials.password.length === 0 || credentials.password.length > MAX_CREDENTIAL_LENGTH) {
    problems.push({ field: 'credentials.password', message: `expected 1 to ${MAX_CREDENTIAL_LENGTH} characters` });
  }
  return problems;
}

/** The allowlist of upstream registries that images may be imported from. */
export class UpstreamService {
  constructor(private readonly deps: { db: Knex; events: RegistryEventSink }) {}

  /** Lists the allowlist, ordered by host. */
  async list(): Promise<UpstreamView[]> {
    const rows: UpstreamRow[] = await this.deps.db('upstreams').orderBy('host').select('*');
    return rows.map(viewOf);
  }

  /** Returns one upstream; throws ImportResourceNotFoundError. */
  async get(hostText: string): Promise<UpstreamView> {
    return viewOf(await this.findRow(this.deps.db, hostText));
  }

  /** Returns an upstream with its credentials, for a connection, or null when it is not on the allowlist. */
  async settings(host: string): Promise<UpstreamSettings | null> {
    const row: UpstreamRow | undefined = await this.deps.db('upstreams').where({ host }).first('*');
    if (!row) return null;
    const credentials = row.username !== null && row.password !== null ? { username: row.username, password: row.password } : null;
    return { host: row.host, insecureHttp: row.insecure_http, credentials };
  }

  /** Adds an upstream. Throws ImportInputError for invalid fields and UpstreamExistsError for a host already listed. */
  async create(context: RequestContext, actor: string, input: CreateUpstreamInput): Promise<UpstreamView> {
    const normalized = normalizeHost(input.host);
    const problems: InputProblem[] = 'problem' in normalized ? [{ field: 'host', message: normalized.problem }] : [];
    if (input.credentials) problems.push(...credentialProblems(input.credentials));
    if (problems.length > 0 || !('host' in normalized)) throw new ImportInputError(problems);

    const { db, events } = this.deps;
    try {
      return await db.transaction(async (trx) => {
        const [row]: UpstreamRow[] = await trx('upstreams')
          .insert({
            host: normalized.host,
            username: input.credentials?.username ?? null,
            password: input.credentials?.password ?? null,
            insecure_http: input.insecureHttp ?? false,
            created_by: actor,
          })
          .returning('*');
        if (!row) throw new Error(`inserting upstream ${normalized.host} returned no row`);
        await events.record(context, { action: 'upstream.change', upstream: normalized.host, change: 'create', by: actor }, trx);
        return viewOf(row);
      });
    } catch (error) {
      if (databaseErrorKind(error) === 'unique_violation') throw new UpstreamExistsError(normalized.host);
      throw error;
    }
  }

  /** Removes an upstream; imports from it that have not run yet then fail. Throws ImportResourceNotFoundError. */
  async delete(context: RequestContext, actor: string, hostText: string): Promise<void> {
    const { db, events } = this.deps;
    await db.transaction(async (trx) => {
      const row = await this.findRow(trx, hostText);
      await trx('upstreams').where({ host: row.host }).delete();
      await events.record(context, { action: 'upstream.change', upstream: row.host, change: 'delete', by: actor }, trx);
    });
  }

  private async findRow(db: Knex, hostText: string): Promise<UpstreamRow> {
    const normalized = normalizeHost(hostText);
    const row: UpstreamRow | undefined = 'host' in normalized ? await db('upstreams').where({ host: normalized.host }).first('*') : undefined;
    if (!row) throw new ImportResourceNotFoundError('upstream', hostText);
    return row;
  }
}
