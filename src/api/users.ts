import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import { InvalidAccountInputError } from '../auth/account-errors.js';
import { passwordProblems, type AccountService } from '../auth/accounts.js';
import { AuthenticationError, type Authenticator } from '../auth/authenticator.js';
import { contextOf, describeRequest } from '../http/request-context.js';
import { OPERATIONS } from '../operations.js';
import { actorOf, isAdministrator, principalOf, requireAdmin } from './authentication.js';
import { ApiError } from './errors.js';
import { MAX_GROUPS_PER_REQUEST, parseBody } from './validation.js';

const createUserBody = z.strictObject({
  username: z.string(),
  password: z.string(),
  groups: z.array(z.string()).max(MAX_GROUPS_PER_REQUEST).default([]),
});

const updateUserBody = z
  .strictObject({
    disabled: z.boolean().optional(),
    groups: z.array(z.string()).max(MAX_GROUPS_PER_REQUEST).optional(),
  })
  .refine((body) => body.disabled !== undefined || body.groups !== undefined, { message: 'expected disabled, groups or both' });

const changePasswordBody = z.strictObject({
  password: z.string(),
  currentPassword: z.string().optional(),
});

function usernameOf(request: Request): string {
  return request.params.username as string;
}

/**
 * Routes under /users: create, list, show and update users (admin only), and
 * change a password (admin for any user, a user for itself with its current
 * password).
 */
export function createUsersRouter(deps: { accounts: AccountService; authenticator: Authenticator }): express.Router {
  const { accounts, authenticator } = deps;
  const router = express.Router();

  router.post('/', requireAdmin, async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.userCreate);
    const body = parseBody(createUserBody, request);
    const user = await accounts.createUser(actorOf(request, response), body);
    response.status(201).location(`${request.baseUrl}/${encodeURIComponent(user.username)}`).json(user);
  });

  router.get('/', requireAdmin, async (_request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.userList);
    response.json({ users: await accounts.listUsers() });
  });

  router.get('/:username', requireAdmin, async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.userGet, { target: usernameOf(request) });
    response.json(await accounts.getUser(usernameOf(request)));
  });

  router.patch('/:username', requireAdmin, async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.userUpdate, { target: usernameOf(request) });
    const body = parseBody(updateUserBody, request);
    response.json(await accounts.updateUser(actorOf(request, response), usernameOf(request), body));
  });

  // No requireAdmin here: a user may change its own password.
  router.put('/:username/password', async (request: Request, response: Response) => {
    const username = usernameOf(request);
    describeRequest(response, OPERATIONS.userPasswordChange, { target: username });
    const principal = principalOf(request, response);
    const body = parseBody(changePasswordBody, request);

    if (!isAdministrator(principal)) {
      const changesOwnPassword = principal.kind === 'user' && principal.name === username;
      if (!changesOwnPassword) {
        throw new ApiError('FORBIDDEN', `${principal.subject} may change only its own password; changing another user's password needs the admin permission`, { required: 'admin' });
      }
      if (body.currentPassword === undefined) {
        throw new ApiError('INVALID_REQUEST', 'currentPassword: required when you change your own password', {
          problems: [{ field: 'currentPassword', message: 'required when you change your own password' }],
        });
      }
      // The new password is checked first, so that a rejected one does not count as a failed login.
      const problems = passwordProblems('password', body.password);
      if (problems.length > 0) throw new InvalidAccountInputError(problems);
      await verifyCurrentPassword(authenticator, request, response, username, body.currentPassword);
    }

    await accounts.changePassword(actorOf(request, response), username, body.password);
    response.status(204).end();
  });

  return router;
}

/**
 * Checks the current password through the authenticator, so that wrong
 * guesses count against the login rate limit and are audited like logins.
 * A wrong password is 403: the caller is authenticated, and a 401 would make
 * clients ask for new credentials.
 */
async function verifyCurrentPassword(authenticator: Authenticator, request: Request, response: Response, username: string, currentPassword: string): Promise<void> {
  try {
    await authenticator.login(contextOf(request, response), username, currentPassword, 'basic');
  } catch (error) {
    if (error instanceof AuthenticationError) throw new ApiError('FORBIDDEN', 'currentPassword does not match the current password', { field: 'currentPassword' });
    throw error;
  }
}
