import type { Request, Response } from 'express';
import type { RegistryEventSink } from '../../audit/registry-events.js';
import { RegistryError } from '../../errors.js';
import { contextOf } from '../../http/request-context.js';
import type { MatchedRoute } from '../../registry/routes.js';
import { AuthenticationError, parseAuthorization, type Authenticator, type Caller } from '../authenticator.js';
import { TooManyLoginFailuresError } from '../login-limiter.js';
import { accessOptions, registryAccessNeed, type AccessRequirement } from '../registry-access.js';
import type { AccessEntry } from '../scopes.js';
import { bearerChallenge } from './challenge.js';

export interface RegistryAuthOptions {
  authenticator: Authenticator;
  service: string;
  /** Returns the external base URL, for the challenge's realm. */
  baseUrl(request: Request): string;
  /** Receives the denials of pulls that fail for lack of a permission, before the pull gate decides them. */
  events: RegistryEventSink;
}

function describeRequirement(requirement: AccessRequirement): string {
  return requirement.type === 'registry' ? 'access to the repository catalog (admin)' : `the ${requirement.anyOf.join(' or ')} permission on ${requirement.name}`;
}

/**
 * Authenticates a /v2 request and checks that its caller may do what the
 * route needs. Sets the request context's identity. Throws UNAUTHORIZED with
 * a Bearer challenge when credentials are missing, invalid or a token lacks
 * the scope (so clients fetch a new token), DENIED when the identity has no
 * such permission at all, and TOOMANYREQUESTS after too many failed logins.
 */
export async function authorizeRegistryRequest(request: Request, response: Response, route: MatchedRoute, options: RegistryAuthOptions): Promise<Caller> {
  const context = contextOf(request, response);
  const mountSource = typeof request.query.from === 'string' && typeof request.query.mount === 'string' ? request.query.from : null;
  const need = registryAccessNeed(route, request.method, mountSource);
  const challenge = (scopes: readonly AccessEntry[], error?: 'invalid_token' | 'insufficient_scope') =>
    bearerChallenge({ realm: `${options.baseUrl(request)}/token`, service: options.service, scopes, ...(error ? { error } : {}) });

  let caller: Caller;
  try {
    caller = await options.authenticator.resolve(context, parseAuthorization(request.get('authorization')));
  } catch (error) {
    if (error instanceof AuthenticationError) {
      throw new RegistryError('UNAUTHORIZED', error.message, null, 401, { 'WWW-Authenticate': challenge(need.challenge, error.reason === 'invalid_token' ? 'invalid_token' : undefined) });
    }
    if (error instanceof TooManyLoginFailuresError) {
      throw new RegistryError('TOOMANYREQUESTS', error.message, { retryAfter: error.retryAfterSeconds }, 429, { 'Retry-After': String(error.retryAfterSeconds) });
    }
    throw error;
  }
  context.identity = caller.identity;
  context.principal = caller.principal;
  response.locals.caller = caller;
  if (caller.identity.kind !== 'anonymous') response.locals.logFields = { ...(response.locals.logFields as object | undefined), subject: caller.identity.subject };

  // The base endpoint needs a known caller, so a token issued without credentials does not pass it either.
  if (route.kind === 'base' && caller.identity.kind === 'anonymous') {
    throw new RegistryError('UNAUTHORIZED', 'authentication required: log in to this registry', null, 401, { 'WWW-Authenticate': challenge([]) });
  }

  const events = options.events;
  for (const requirement of need.required) {
    const options = accessOptions(requirement);
    if (options.some((access) => caller.allows(access))) continue;
    if (caller.identity.kind === 'anonymous') {
      throw new RegistryError('UNAUTHORIZED', `authentication required: ${describeRequirement(requirement)} needs a login`, null, 401, { 'WWW-Authenticate': challenge(need.challenge) });
    }
    if (caller.via === 'bearer' && options.some((access) => caller.holds(access))) {
      throw new RegistryError('UNAUTHORIZED', `the token does not carry ${describeRequirement(requirement)}: request a token with that scope`, null, 401, {
        'WWW-Authenticate': challenge(need.challenge, 'insufficient_scope'),
      });
    }
    const subject = caller.identity.subject;
    if ((route.kind === 'manifest' || route.kind === 'blob') && (request.method === 'GET' || request.method === 'HEAD')) {
      const byDigest = route.reference.includes(':');
      await events.record(
        context,
        { action: 'pull.denied', repository: route.name, kind: route.kind, digest: byDigest ? route.reference : null, ...(byDigest ? {} : { tag: route.reference }), reason: `${subject} lacks ${describeRequirement(requirement)}` },
        null,
      );
    }
    throw new RegistryError('DENIED', `requested access to the resource is denied: ${subject} lacks ${describeRequirement(requirement)}; ask an administrator for a grant`, {
      subject,
      type: requirement.type,
      name: requirement.name,
      action: requirement.anyOf[0],
    });
  }
  return caller;
}
