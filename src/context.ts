import type pino from 'pino';

/**
 * Who is asking: nobody known, or a user or robot with the name it logs in
 * with (`robot$<name>` for robots) and, for token requests, the token's id.
 */
export type Identity = { kind: 'anonymous' } | { kind: 'user' | 'robot'; subject: string; tokenId?: string };

/** Facts about one request that domain code may use, with no HTTP types in it. */
export interface RequestContext {
  requestId: string;
  identity: Identity;
  clientAddress: string;
  userAgent: string;
  logger: pino.Logger;
}

export const ANONYMOUS: Identity = { kind: 'anonymous' };
