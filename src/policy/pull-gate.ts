import type { RequestContext } from '../context.js';
import type { PullCertification } from '../audit/registry-events.js';

/** The content a pull requests: a manifest or a blob, by digest, in one repository. */
export interface PullRequest {
  repository: string;
  kind: 'manifest' | 'blob';
  digest: string;
  /** The tag the client asked for, when it pulled a manifest by tag. */
  tag?: string;
  /**
   * True for a HEAD request, which sends no content. Push clients send one
   * for every blob and manifest before they upload it, so a caller with push
   * on the repository may always make it.
   */
  existenceCheck?: boolean;
}

/** A pull the policy would deny but allows because the policy is in dry-run mode. */
export interface WouldDeny {
  reason: string;
  policy: string;
}

export type PullDecision =
  | {
      allowed: true;
      /** The grounds of the pull, for its pull event. Existence checks have none. */
      certification?: PullCertification;
      /** Set when only a dry-run policy allowed the pull; its pull event records the decision as would-deny. */
      wouldDeny?: WouldDeny;
    }
  | {
      allowed: false;
      reason: string;
      /** The certification state of the content and the policy that denied it, when a policy decided. */
      state?: string;
      policy?: string;
    };

/**
 * The one place where a pull is decided. Every manifest and blob read, the
 * source of a cross-repository mount and the referrers listing ask it before
 * any byte is sent.
 */
export interface PullGate {
  decide(context: RequestContext, request: PullRequest): Promise<PullDecision>;

  /**
   * Returns the manifest digests, out of `digests`, that the caller may pull
   * from the repository, for listings that show only pullable entries.
   */
  filterPullable(context: RequestContext, repository: string, digests: readonly string[]): Promise<Set<string>>;
}
