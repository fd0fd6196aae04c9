import type pino from 'pino';
import type { Identity, RequestContext } from '../context.js';
import type { RegistryEventSink } from '../audit/registry-events.js';
import { IdentityStore, type Principal } from './identity-store.js';
import { LoginLimiter, TooManyLoginFailuresError } from './login-limiter.js';
import { matchesPattern } from './patterns.js';
import { grantedActions } from './permissions.js';
import { isGrantableName, type AccessEntry } from './scopes.js';
import { TokenInvalidError, type TokenService } from './tokens.js';

/** Credentials as they arrive in an Authorization header. */
export type Credentials = { kind: 'none' } | { kind: 'basic'; username: string; password: string } | { kind: 'bearer'; token: string } | { kind: 'malformed' };

/** Parses an Authorization header; anything that is neither Basic nor Bearer is malformed. */
export function parseAuthorization(header: string | undefined): Credentials {
  if (header === undefined || header === '') return { kind: 'none' };
  const match = /^(Basic|Bearer)\s+(\S+)\s*$/i.exec(header);
  if (!match) return { kind: 'malformed' };
  const scheme = (match[1] as string).toLowerCase();
  const value = match[2] as string;
  if (scheme === 'bearer') return { kind: 'bearer', token: value };

  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return { kind: 'malformed' };
  return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** A failed authentication, with its reason. */
export class AuthenticationError extends Error {
  constructor(
    readonly reason: 'invalid_credentials' | 'invalid_token' | 'malformed',
    message: string,
  ) {
    super(message);
    this.name = 'AuthenticationError';
  }
}

/** One action on one resource, as a request needs it. */
export interface RequiredAccess {
  type: 'repository' | 'registry';
  name: string;
  action: string;
}

/** The authenticated caller of one request and what it may do. */
export interface Caller {
  identity: Identity;
  principal: Principal | null;
  via: 'anonymous' | 'basic' | 'bearer';
  /** Whether this request's credentials allow the action: a token's access claim, or the grants for Basic and anonymous callers. */
  allows(access: RequiredAccess): boolean;
  /** Whether the identity has the permission at all, whatever its token carries. */
  holds(access: RequiredAccess): boolean;
}

export interface AuthenticatorDeps {
  store: IdentityStore;
  tokens: TokenService;
  limiter: LoginLimiter;
  events: RegistryEventSink;
  anonymousPullPatterns: readonly string[];
  logger: pino.Logger;
}

function principalAllows(principal: Principal, access: RequiredAccess): boolean {
  return grantedActions(principal.grants, principal.groups, [{ type: access.type, name: access.name, actions: [access.action] }]).length > 0;
}

function accessClaimAllows(claim: readonly AccessEntry[], access: RequiredAccess): boolean {
  return claim.some((entry) => entry.type === access.type && entry.name === access.name && (entry.actions.includes(access.action) || entry.actions.includes('*')));
}

/**
 * Turns credentials into a caller: logs users and robots in with rate
 * limiting, verifies tokens, and reports every login to the event sink.
 */
export class Authenticator {
  constructor(private readonly deps: AuthenticatorDeps) {}

  get tokens(): TokenService {
    return this.deps.tokens;
  }

  /** Returns whether anonymous callers may pull from a repository. */
  anonymousMayPull(repository: string): boolean {
    return isGrantableName(repository) && this.deps.anonymousPullPatterns.some((pattern) => matchesPattern(pattern, repository));
  }

  /** Returns the part of the requested access that an anonymous caller gets: pull on the configured patterns only. */
  anonymousAccess(requested: readonly AccessEntry[]): AccessEntry[] {
    return requested
      .filter((entry) => entry.type === 'repository' && this.anonymousMayPull(entry.name) && (entry.actions.includes('pull') || entry.actions.includes('*')))
      .map((entry) => ({ type: 'repository', name: entry.name, actions: ['pull'] }));
  }

  /**
   * Checks a login name and secret. Throws TooManyLoginFailuresError while the
   * name or the client address is over its failure limit, and
   * AuthenticationError for wrong credentials. Records the attempt either way.
   */
  async login(context: RequestContext, username: string, password: string, method: 'basic' | 'token'): Promise<Principal> {
    // PostgreSQL text cannot hold NUL. No account name contains U+FFFD, so the replaced name still fails as an unknown one.
    const loginName = username.replaceAll('\u0000', '\uFFFD');
    const attempt = this.deps.limiter.beginAttempt(loginName, password);
    try {
      return await this.checkLogin(context, loginName, password, method, attempt.concurrentSecrets);
    } finally {
      // The attempt stays registered until its failure is stored, so the limit never misses it.
      attempt.end();
    }
  }

  private async checkLogin(context: RequestContext, username: string, password: string, method: 'basic' | 'token', concurrentSecrets: number): Promise<Principal> {
    const { limiter, store, events } = this.deps;
    const subject = username.slice(0, 200);
    try {
      await limiter.check(username, context.clientAddress, concurrentSecrets);
    } catch (error) {
      if (error instanceof TooManyLoginFailuresError) {
        await events.record(context, { action: 'auth.login', subject, success: false, method, reason: 'rate limited' }, null);
      }
      throw error;
    }

    const principal = await store.authenticate(username, password);
    if (!principal) {
      await limiter.recordFailure(username, context.clientAddress);
      await events.record(context, { action: 'auth.login', subject, success: false, method, reason: 'invalid credentials' }, null);
      context.logger.info({ subject }, 'login failed: invalid credentials');
      throw new AuthenticationError('invalid_credentials', 'invalid username or password');
    }
    await limiter.recordSuccess(username);
    await events.record(context, { action: 'auth.login', subject: principal.subject, success: true, method }, null);
    return principal;
  }

  /** Resolves a request's credentials into its caller. Throws AuthenticationError or TooManyLoginFailuresError. */
  async resolve(context: RequestContext, credentials: Credentials): Promise<Caller> {
    if (credentials.kind === 'malformed') throw new AuthenticationError('malformed', 'malformed Authorization header: use Basic or Bearer credentials');
    if (credentials.kind === 'none') return this.anonymousCaller();
    if (credentials.kind === 'basic') {
      const principal = await this.login(context, credentials.username, credentials.password, 'basic');
      return this.principalCaller(principal, 'basic', null);
    }

    let claims;
    try {
      claims = this.deps.tokens.verify(credentials.token);
    } catch (error) {
      if (error instanceof TokenInvalidError) {
        context.logger.info({ reason: error.reason }, 'bearer token rejected');
        throw new AuthenticationError('invalid_token', `invalid token: ${error.reason.replaceAll('-', ' ')}`);
      }
      throw error;
    }
    if (claims.sub === ANONYMOUS_SUBJECT) {
      const anonymous = this.anonymousCaller();
      return { ...anonymous, via: 'bearer', allows: (access) => anonymous.allows(access) && accessClaimAllows(claims.access, access) };
    }
    // A token outlives nothing: a disabled user, or a revoked or expired robot, loses access at once.
    const principal = await this.deps.store.findPrincipal(claims.sub);
    if (!principal) throw new AuthenticationError('invalid_token', 'invalid token: its account is disabled, revoked or gone');
    return this.principalCaller(principal, 'bearer', { tokenId: claims.jti, access: claims.access });
  }

  private anonymousCaller(): Caller {
    const allows = (access: RequiredAccess) => access.type === 'repository' && access.action === 'pull' && this.anonymousMayPull(access.name);
    return { identity: { kind: 'anonymous' }, principal: null, via: 'anonymous', allows, holds: allows };
  }

  private principalCaller(principal: Principal, via: 'basic' | 'bearer', token: { tokenId: string; access: AccessEntry[] } | null): Caller {
    const holds = (access: RequiredAccess) => principalAllows(principal, access) || (access.action === 'pull' && access.type === 'repository' && this.anonymousMayPull(access.name));
    return {
      identity: { kind: principal.kind, subject: principal.subject, ...(token ? { tokenId: token.tokenId } : {}) },
      principal,
      via,
      allows: token ? (access) => accessClaimAllows(token.access, access) && holds(access) : holds,
      holds,
    };
  }
}

/** The `sub` of tokens issued to callers without credentials; no account may take this name. */
export const ANONYMOUS_SUBJECT = 'anonymous';
