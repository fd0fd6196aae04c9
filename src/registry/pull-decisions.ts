import { RegistryError } from '../errors.js';
import type { RequestContext } from '../context.js';
import type { PullCertification, RegistryEventSink } from '../audit/registry-events.js';
import type { PullDecision, PullRequest } from '../policy/pull-gate.js';

/**
 * Applies a pull gate decision. A denial is recorded as `pull.denied` and
 * thrown as DENIED with the gate's reason. A pull that only a dry-run policy
 * allowed is recorded as `pull.would-deny`. Returns the grounds of the pull,
 * for its pull event.
 */
export async function enforcePullDecision(events: RegistryEventSink, context: RequestContext, request: PullRequest, decision: PullDecision): Promise<PullCertification | undefined> {
  const { repository, digest } = request;
  if (!decision.allowed) {
    await events.record(context, { action: 'pull.denied', repository, digest, reason: decision.reason }, null);
    throw new RegistryError('DENIED', decision.reason, { repository, digest });
  }
  if (decision.wouldDeny) {
    await events.record(context, { action: 'pull.would-deny', repository, digest, reason: decision.wouldDeny.reason, policy: decision.wouldDeny.policy }, null);
  }
  return decision.certification;
}
