import type pino from 'pino';

/**
 * Who is asking. Until authentication exists every request is anonymous; the
 * token service will fill in users and robots.
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
