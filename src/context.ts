import type pino from 'pino';
import type { Principal } from './auth/identity-store.js';

/**
 * The caller: anonymous, or a user or robot with the name it logs in
 * with (`robot$<name>` for robots) and, for token requests, the token's id.
 */
export type Identity = { kind: 'anonymous' } | { kind: 'user' | 'robot'; subject: string; tokenId?: string };

/** Facts about one request that domain code may use, with no HTTP types in it. */
export interface RequestContext {
  requestId: string;
  identity: Identity;
  /** The authenticated user or robot with its groups and grants; null for anonymous callers and before authentication. */
  principal: Principal | null;
  clientAddress: string;
  userAgent: string;
  logger: pino.Logger;
  /** Set for work the gateway or the CLI does on its own behalf; the audit trail records it as a system actor with this name. */
  system?: string;
}

export const ANONYMOUS: Identity = { kind: 'anonymous' };
