import { RegistryError } from '../errors.js';
import type { RequestContext } from '../context.js';
import type { PullCertification, RegistryEventSink } from '../audit/registry-events.js';
import type { PullDecision, PullRequest } from '../policy/pull-gate.js';

/**
 * Applies a pull gate decision. A denial is recorded as `pull.denied` and
 * thrown as DENIED with the gate's reason. Returns the grounds of an allowed
 * pull for its pull event, with the dry-run policy's verdict attached when
 * only dry-run mode allowed it.
 */
export async function enforcePullDecision(events: RegistryEventSink, context: RequestContext, request: PullRequest, decision: PullDecision): Promise<PullCertification | undefined> {
  const { repository, digest } = request;
  if (!decision.allowed) {
    await events.record(
      context,
      {
        action: 'pull.denied',
        repository,
        kind: request.kind,
        digest,
        reason: decision.reason,
        ...(request.tag !== undefined ? { tag: request.tag } : {}),
        ...(decision.state !== undefined ? { state: decision.state } : {}),
        ...(decision.policy !== undefined ? { policy: decision.policy } : {}),
      },
      null,
    );
    throw new RegistryError('DENIED', decision.reason, { repository, digest });
  }
  if (decision.wouldDeny && decision.certification) return { ...decision.certification, wouldDeny: decision.wouldDeny };
  return decision.certification;
}
