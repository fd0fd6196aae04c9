import type { Knex } from 'knex';
import type pino from 'pino';
import type { AuthConfig } from '../config.js';
import type { RegistryEventSink } from '../audit/registry-events.js';
import { Authenticator } from './authenticator.js';
import { IdentityStore } from './identity-store.js';
import { LoginLimiter } from './login-limiter.js';
import { loadSigningKeys } from './signing-keys.js';
import { TokenIssuer } from './token-issuer.js';
import { TokenService } from './tokens.js';

/** Everything the HTTP layer needs to authenticate callers and issue tokens. */
export interface AuthServices {
  authenticator: Authenticator;
  issuer: TokenIssuer;
  tokens: TokenService;
  service: string;
}

/** Loads the signing keys and builds the authentication services from the settings. */
export async function createAuthServices(db: Knex, config: AuthConfig, events: RegistryEventSink, logger: pino.Logger): Promise<AuthServices> {
  const keys = await loadSigningKeys(db, config.signingKeyFiles, logger);
  const tokens = new TokenService({ issuer: config.issuer, service: config.service, keys, lifetimeSeconds: config.tokenLifetimeSeconds, leewaySeconds: config.clockSkewSeconds });
  const store = new IdentityStore(db);
  const limiter = new LoginLimiter(db, { maxFailuresPerUser: config.maxFailuresPerUser, maxFailuresPerAddress: config.maxFailuresPerAddress, windowSeconds: config.loginFailureWindowSeconds });
  const authenticator = new Authenticator({ store, tokens, limiter, events, anonymousPullPatterns: config.anonymousPullPatterns, logger });
  return { authenticator, issuer: new TokenIssuer({ authenticator, store, events }), tokens, service: config.service };
}
