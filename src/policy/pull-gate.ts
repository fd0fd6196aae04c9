import type { RequestContext } from '../context.js';

/** What a pull asks for: a manifest or a blob, by digest, in one repository. */
export interface PullRequest {
  repository: string;
  kind: 'manifest' | 'blob';
  digest: string;
  /** The tag the client asked for, when it pulled a manifest by tag. */
  tag?: string;
}

export type PullDecision = { allowed: true } | { allowed: false; reason: string };

/**
 * The one place where a pull is decided. Every manifest and blob read, and
 * the source of a cross-repository mount, asks it before any byte is sent.
 */
export interface PullGate {
  decide(context: RequestContext, request: PullRequest): Promise<PullDecision>;
}

/** Allows every pull; the certification gate replaces it. */
export const allowAllPullGate: PullGate = {
  decide: async () => ({ allowed: true }),
};
