import type { NextFunction, Request, Response } from 'express';
import type { Actor } from '../auth/accounts.js';
import { parseAuthorization, type Authenticator } from '../auth/authenticator.js';
import type { Principal } from '../auth/identity-store.js';
import { globalPermissions } from '../auth/permissions.js';
import { contextOf } from '../http/request-context.js';
import { ApiError, BASIC_CHALLENGE } from './errors.js';

/**
 * Returns middleware that authenticates every management API request with
 * Basic credentials or a Bearer token from /token. A request without a user
 * or robot behind it is rejected with 401 and a Basic challenge. The
 * identity and principal are stored in the request context.
 */
export function authenticate(authenticator: Authenticator) {
  return async (request: Request, response: Response, next: NextFunction): Promise<void> => {
    const context = contextOf(request, response);
    const caller = await authenticator.resolve(context, parseAuthorization(request.get('authorization')));
    if (!caller.principal) {
      throw new ApiError('UNAUTHORIZED', 'authentication required: send Basic credentials or a Bearer token from /token', null, { 'WWW-Authenticate': BASIC_CHALLENGE });
    }

    context.identity = caller.identity;
    context.principal = caller.principal;
    response.locals.caller = caller;
    response.locals.logFields = { ...(response.locals.logFields as Record<string, string> | undefined), subject: caller.principal.subject };
    next();
  };
}

/** Returns the principal that `authenticate` stored; throws when the middleware did not run. */
export function principalOf(request: Request, response: Response): Principal {
  const principal = contextOf(request, response).principal;
  if (!principal) throw new Error('the management API authentication middleware did not run before this handler');
  return principal;
}

/** Returns whether a principal has the global `admin` permission. */
export function isAdministrator(principal: Principal): boolean {
  return globalPermissions(principal.grants, principal.groups).has('admin');
}

/** Rejects the request with 403 unless its principal has `admin`. */
export function requireAdmin(request: Request, response: Response, next: NextFunction): void {
  const principal = principalOf(request, response);
  if (!isAdministrator(principal)) {
    throw new ApiError('FORBIDDEN', `${principal.subject} lacks the admin permission, which this endpoint needs: ask an administrator to add the account to the admins group`, {
      required: 'admin',
    });
  }
  next();
}

/** Returns the actor of an authenticated request, for the audit trail. */
export function actorOf(request: Request, response: Response): Actor {
  return { context: contextOf(request, response), name: principalOf(request, response).subject };
}
