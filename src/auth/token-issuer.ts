import type { RequestContext } from '../context.js';
import type { RegistryEventSink } from '../audit/registry-events.js';
import { ANONYMOUS_SUBJECT, AuthenticationError, type Authenticator } from './authenticator.js';
import type { IdentityStore, Principal } from './identity-store.js';
import { grantedActions } from './permissions.js';
import type { AccessEntry } from './scopes.js';
import { TokenInvalidError } from './tokens.js';

/** The body of a token response, in the field names of the Docker token specification and OAuth 2. */
export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
  scope?: string;
}

export interface TokenIssuerDeps {
  authenticator: Authenticator;
  store: IdentityStore;
  events: RegistryEventSink;
}

/**
 * Issues access tokens for the token endpoint: the access granted is the
 * intersection of the requested scopes and what the identity's grants allow now.
 */
export class TokenIssuer {
  constructor(private readonly deps: TokenIssuerDeps) {}

  /** Logs in with a password or robot secret and issues a token; a refresh token too when `refreshClientId` is set. */
  async issueForLogin(context: RequestContext, username: string, password: string, requested: AccessEntry[], refreshClientId: string | null): Promise<TokenResponse> {
    const principal = await this.deps.authenticator.login(context, username, password, 'token');
    const refreshToken = refreshClientId === null ? undefined : this.deps.authenticator.tokens.signRefreshToken(principal.subject, refreshClientId).token;
    return this.issueFor(context, principal, requested, refreshToken, 'password');
  }

  /** Issues a token to a caller without credentials, carrying only the anonymous pull access the settings allow. */
  async issueAnonymous(context: RequestContext, requested: AccessEntry[]): Promise<TokenResponse> {
    const access = this.deps.authenticator.anonymousAccess(requested);
    const issued = this.deps.authenticator.tokens.sign(ANONYMOUS_SUBJECT, access);
    await this.deps.events.record(context, { action: 'auth.token', subject: ANONYMOUS_SUBJECT, tokenId: issued.claims.jti, access, refresh: false, grant: 'anonymous' }, null);
    return { token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt.toISOString() };
  }

  /**
   * Issues a token from a refresh token. The account must still be active,
   * and its credentials must not have changed since the refresh token was
   * issued, so disabling a user or changing a password ends renewals.
   */
  async issueForRefresh(context: RequestContext, refreshToken: string, requested: AccessEntry[]): Promise<TokenResponse> {
    let claims;
    try {
      claims = this.deps.authenticator.tokens.verifyRefreshToken(refreshToken);
    } catch (error) {
      if (error instanceof TokenInvalidError) {
        const reason = `invalid refresh token: ${error.reason.replaceAll('-', ' ')}`;
        await this.deps.events.record(context, { action: 'auth.login', subject: ANONYMOUS_SUBJECT, success: false, method: 'token', reason }, null);
        throw new AuthenticationError('invalid_token', reason);
      }
      throw error;
    }
    const principal = await this.deps.store.findPrincipal(claims.sub);
    if (!principal) {
      await this.deps.events.record(context, { action: 'auth.login', subject: claims.sub, success: false, method: 'token', reason: 'refresh for a disabled, revoked or missing account' }, null);
      throw new AuthenticationError('invalid_token', 'invalid refresh token: its account is disabled, revoked or gone');
    }
    // NOTE: `iat` has whole seconds, so a refresh token issued earlier in the same second as a password change stays valid.
    if (claims.iat < Math.floor(principal.credentialsChangedAt.getTime() / 1000)) {
      await this.deps.events.record(context, { action: 'auth.login', subject: claims.sub, success: false, method: 'token', reason: 'refresh token issued before the last password change' }, null);
      throw new AuthenticationError('invalid_token', 'invalid refresh token: the password changed after it was issued; log in again');
    }
    return this.issueFor(context, principal, requested, refreshToken, 'refresh_token');
  }

  private async issueFor(context: RequestContext, principal: Principal, requested: AccessEntry[], refreshToken: string | undefined, grant: 'password' | 'refresh_token'): Promise<TokenResponse> {
    const access = grantedActions(principal.grants, principal.groups, requested);
    const anonymous = this.deps.authenticator.anonymousAccess(requested).filter((entry) => !access.some((granted) => granted.type === entry.type && granted.name === entry.name));
    const combined = [...access, ...anonymous];
    const issued = this.deps.authenticator.tokens.sign(principal.subject, combined);
    await this.deps.events.record(context, { action: 'auth.token', subject: principal.subject, tokenId: issued.claims.jti, access: combined, refresh: refreshToken !== undefined, grant }, null);
    return {
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt.toISOString(),
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
    };
  }
}
