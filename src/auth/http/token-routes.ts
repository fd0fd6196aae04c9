import express, { type Request, type Response } from 'express';
import { RegistryError } from '../../errors.js';
import { contextOf, describeRequest } from '../../http/request-context.js';
import { OPERATIONS } from '../../operations.js';
import { AuthenticationError, parseAuthorization } from '../authenticator.js';
import { TooManyLoginFailuresError } from '../login-limiter.js';
import { parseScopes } from '../scopes.js';
import type { TokenIssuer } from '../token-issuer.js';
import type { TokenService } from '../tokens.js';

/** The Basic challenge sent with a 401 from the token endpoint. */
const BASIC_CHALLENGE = 'Basic realm="Portcullis"';

function queryValues(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  return [];
}

function singleValue(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** Rejects a `service` parameter that names another service or is repeated. An absent one is accepted. */
function checkService(service: unknown, expected: string): void {
  if (service === undefined || service === expected) return;
  if (typeof service !== 'string') throw new RegistryError('DENIED', `the service parameter must be given once: this token endpoint serves "${expected}"`, { service: expected }, 400);
  throw new RegistryError('DENIED', `unknown service "${service.slice(0, 100)}": this token endpoint serves "${expected}"`, { service: expected }, 400);
}

/** Maps login failures to the token endpoint's 401 and 429 responses. */
function translateLoginError(error: unknown): unknown {
  if (error instanceof AuthenticationError) return new RegistryError('UNAUTHORIZED', error.message, null, 401, { 'WWW-Authenticate': BASIC_CHALLENGE });
  if (error instanceof TooManyLoginFailuresError) return new RegistryError('TOOMANYREQUESTS', error.message, { retryAfter: error.retryAfterSeconds }, 429, { 'Retry-After': String(error.retryAfterSeconds) });
  return error;
}

function sendToken(response: Response, body: object): void {
  response.status(200).set('Cache-Control', 'no-store').json(body);
}

/**
 * The Docker token endpoint (GET with Basic credentials, POST with the OAuth 2
 * form that containerd sends) and the JWKS of the signing keys.
 */
export function createTokenRouter(issuer: TokenIssuer, tokens: TokenService): express.Router {
  const router = express.Router();

  router.get('/token', async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.tokenGet);
    const context = contextOf(request, response);
    checkService(request.query.service, tokens.service);
    const requested = parseScopes(queryValues(request.query.scope));
    const credentials = parseAuthorization(request.get('authorization'));

    if (credentials.kind === 'none') {
      sendToken(response, await issuer.issueAnonymous(context, requested));
      return;
    }
    if (credentials.kind !== 'basic') throw new RegistryError('UNAUTHORIZED', 'the token endpoint takes HTTP Basic credentials', null, 401, { 'WWW-Authenticate': BASIC_CHALLENGE });

    const offline = singleValue(request.query.offline_token) === 'true';
    const clientId = singleValue(request.query.client_id);
    const body = await issuer.issueForLogin(context, credentials.username, credentials.password, requested, offline ? (clientId ?? 'docker') : null).catch((error: unknown) => {
      throw translateLoginError(error);
    });
    sendToken(response, body);
  });

  router.post('/token', express.urlencoded({ extended: false, limit: '16kb' }), async (request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.tokenPost);
    const context = contextOf(request, response);
    const form = (request.body ?? {}) as Record<string, unknown>;
    checkService(form.service, tokens.service);
    const requested = parseScopes(queryValues(form.scope));
    const grantType = singleValue(form.grant_type);

    let body;
    if (grantType === 'password') {
      const username = singleValue(form.username);
      const password = singleValue(form.password);
      if (!username || password === null) throw new RegistryError('UNAUTHORIZED', 'grant_type=password needs username and password', null, 401, { 'WWW-Authenticate': BASIC_CHALLENGE });
      const clientId = singleValue(form.client_id) ?? 'docker';
      const offline = singleValue(form.access_type) === 'offline';
      body = await issuer.issueForLogin(context, username, password, requested, offline ? clientId : null).catch((error: unknown) => {
        throw translateLoginError(error);
      });
    } else if (grantType === 'refresh_token') {
      const refreshToken = singleValue(form.refresh_token);
      if (!refreshToken) throw new RegistryError('UNAUTHORIZED', 'grant_type=refresh_token needs refresh_token', null, 401, { 'WWW-Authenticate': BASIC_CHALLENGE });
      body = await issuer.issueForRefresh(context, refreshToken, requested).catch((error: unknown) => {
        throw translateLoginError(error);
      });
    } else {
      throw new RegistryError('UNSUPPORTED', 'unsupported grant_type: use password or refresh_token', { grantType: grantType?.slice(0, 40) ?? null }, 400);
    }
    sendToken(response, body);
  });

  router.get('/.well-known/jwks.json', (_request: Request, response: Response) => {
    describeRequest(response, OPERATIONS.jwks);
    response.status(200).set('Cache-Control', 'public, max-age=60').json(tokens.jwks());
  });

  return router;
}
