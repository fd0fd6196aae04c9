import type { Knex } from 'knex';
import type { RequestContext } from '../context.js';
import type { Principal } from '../auth/identity-store.js';
import type { PullCertification } from '../audit/registry-events.js';
import { repositoryPermissions } from '../auth/permissions.js';
import { policyFor } from '../certification/status.js';
import type { CertificationOutcome } from '../certification/state.js';
import { findRepositoryId } from '../registry/repositories.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { AttachmentRules } from './attachments.js';
import { ArchiveDetector } from './layer-content.js';
import type { Policy } from './policies.js';
import type { PullDecision, PullGate, PullRequest } from './pull-gate.js';
import { PullEvaluator, type ManifestEvaluation, type PullScope } from './pull-evaluation.js';

/**
 * Digest of the two-byte blob `{}`, the config of every OCI 1.1 artifact.
 * Its content is fixed, so serving it through an attachment reveals nothing.
 */
const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

/** The grounds on which the caller may pull content that is not certified, or null when it may not. */
type UncertifiedAccess = 'pull-uncertified' | 'uncertified-group' | null;

/** The decision on certified content alone, before uncertified access and dry-run are considered. */
type Outcome = { allowed: true; certification: PullCertification } | { allowed: false; state: string; reason: string };

/**
 * The pull gate that enforces certification. State is read fresh from
 * PostgreSQL on every decision, with no cache, so a revocation or rejection
 * applies on every replica from its commit on.
 *
 * A manifest may be pulled when it is certified under the repository's
 * policy, when an image index in the repository that lists it is certified,
 * or when it is a qualifying attachment of a pullable manifest. A blob may be
 * pulled when a manifest in the repository that may be pulled references it.
 * Otherwise callers with `pull-uncertified` on the repository, or in one of
 * the policy's uncertified groups, may pull it as uncertified content. A
 * dry-run policy allows it and reports that it would have denied it. Everyone
 * else is denied with the reason.
 */
export class CertificationGate implements PullGate {
  private readonly evaluator: PullEvaluator;

  constructor(
    private readonly db: Knex,
    rules: AttachmentRules,
    store: BlobStore,
  ) {
    this.evaluator = new PullEvaluator(db, rules, new ArchiveDetector(store));
  }

  async decide(context: RequestContext, request: PullRequest): Promise<PullDecision> {
    const scope = await this.scopeOf(request.repository);
    if (scope === null) return { allowed: false, reason: `repository ${request.repository} not found` };

    const principal = context.principal;
    if (request.existenceCheck === true && principal !== null && repositoryPermissions(principal.grants, principal.groups, request.repository).has('push')) {
      return { allowed: true };
    }

    const outcome = request.kind === 'manifest' ? await this.manifestOutcome(scope, request.digest) : await this.blobOutcome(scope, request.digest);
    if (outcome.allowed) return outcome;

    // Uncertified access covers every blob linked to the repository, including
    // blobs that no manifest references yet, as a push in progress leaves them.
    const policy = scope.policy.name;
    const uncertified = uncertifiedAccess(principal, request.repository, scope.policy);
    if (uncertified !== null) return { allowed: true, certification: { state: outcome.state, policy, uncertified: true, via: uncertified } };
    if (scope.policy.mode === 'dry-run') {
      return { allowed: true, certification: { state: outcome.state, policy, uncertified: true, via: 'dry-run' }, wouldDeny: { reason: outcome.reason, policy } };
    }
    return { allowed: false, reason: outcome.reason, state: outcome.state, policy };
  }

  async filterPullable(context: RequestContext, repository: string, digests: readonly string[]): Promise<Set<string>> {
    if (digests.length === 0) return new Set();
    const scope = await this.scopeOf(repository);
    if (scope === null) return new Set();
    if (uncertifiedAccess(context.principal, repository, scope.policy) !== null || scope.policy.mode === 'dry-run') return new Set(digests);

    const evaluations = await this.evaluator.evaluate(scope, digests);
    return new Set(digests.filter((digest) => evaluations.get(digest)?.grounds));
  }

  private async scopeOf(repository: string): Promise<PullScope | null> {
    const [repositoryId, policy] = await Promise.all([findRepositoryId(this.db, repository), policyFor(this.db, repository)]);
    if (repositoryId === null) return null;
    return { repository, repositoryId, policy, now: new Date() };
  }

  private async manifestOutcome(scope: PullScope, digest: string): Promise<Outcome> {
    const evaluation = (await this.evaluator.evaluate(scope, [digest])).get(digest) as ManifestEvaluation;
    if (evaluation.grounds !== null) return { allowed: true, certification: certificationOf(scope, evaluation, digest) };
    return { allowed: false, state: evaluation.state.state, reason: manifestDenial(scope, evaluation) };
  }

  /**
   * Evaluates every manifest in the repository that references the blob, in
   * one batch. A blob reached only through attachments is denied when another
   * manifest that is not pullable references it too, because an attachment's
   * descriptors may give an image layer an allowlisted media type. Only a
   * qualifying attachment leaves the blob open. A manifest that has a subject
   * or a cosign-style tag but does not qualify counts as an image, so a tag
   * like `sha256-<hex>.att` cannot lift the protection of its layers.
   *
   * NOTE: only manifests in this repository are checked for the same blob.
   */
  private async blobOutcome(scope: PullScope, blobDigest: string): Promise<Outcome> {
    const rows: Array<{ digest: string }> = await this.db('manifest_blobs as mb')
      .join('manifests as m', 'm.id', 'mb.manifest_id')
      .where({ 'mb.repository_id': scope.repositoryId, 'mb.digest': blobDigest })
      .orderBy('m.id')
      .select('m.digest');
    const candidates = rows.map((row) => row.digest);
    if (candidates.length === 0) {
      return {
        allowed: false,
        state: 'unreferenced',
        reason: `blob ${blobDigest} in ${scope.repository} is not referenced by any manifest there, and only the blobs of manifests you may pull are served`,
      };
    }

    const evaluations = [...(await this.evaluator.evaluate(scope, candidates)).values()];
    const direct = evaluations.find((evaluation) => evaluation.grounds !== null && evaluation.grounds.via !== 'attachment');
    if (direct) return { allowed: true, certification: certificationOf(scope, direct, blobDigest) };

    const first = evaluations[0] as ManifestEvaluation;
    const throughAttachment = evaluations.find((evaluation) => evaluation.grounds !== null);
    if (throughAttachment === undefined) {
      const others = evaluations.length > 1 ? ` (and ${evaluations.length - 1} other manifest(s) there, none of them pullable)` : '';
      return { allowed: false, state: first.state.state, reason: `blob ${blobDigest} belongs to no manifest you may pull in ${scope.repository}${others}: ${manifestDenial(scope, first)}` };
    }

    const image = evaluations.find((evaluation) => evaluation.grounds === null && (evaluation.attachment === null || evaluation.attachment.problem !== null));
    if (image === undefined || blobDigest === EMPTY_JSON_DIGEST) return { allowed: true, certification: certificationOf(scope, throughAttachment, blobDigest) };
    return {
      allowed: false,
      state: image.state.state,
      reason: `blob ${blobDigest} is part of the attachment ${scope.repository}@${throughAttachment.digest}, but also of ${manifestDenial(scope, image)}`,
    };
  }
}

/** Returns how the caller may pull uncertified content of the repository: its `pull-uncertified` permission (which admins hold) or a group the policy names. */
function uncertifiedAccess(principal: Principal | null, repository: string, policy: Policy): UncertifiedAccess {
  if (principal === null) return null;
  if (repositoryPermissions(principal.grants, principal.groups, repository).has('pull-uncertified')) return 'pull-uncertified';
  if (principal.groups.some((group) => policy.uncertifiedGroups.includes(group))) return 'uncertified-group';
  return null;
}

/** Describes a pull allowed by certification, naming the certified digest when it is not the pulled one. */
function certificationOf(scope: PullScope, evaluation: ManifestEvaluation, pulledDigest: string): PullCertification {
  const grounds = evaluation.grounds;
  if (grounds === null) throw new Error(`certificationOf called for ${evaluation.digest}, which is not pullable`);
  return {
    state: 'certified',
    policy: scope.policy.name,
    uncertified: false,
    ...(grounds.via === 'index' || grounds.via === 'attachment' ? { via: grounds.via } : {}),
    ...(grounds.digest !== pulledDigest ? { certifiedDigest: grounds.digest } : {}),
  };
}

/** Describes a certification state that does not allow a pull, in the words a developer acts on. */
function stateText(outcome: CertificationOutcome): string {
  switch (outcome.state) {
    case 'rejected':
      return `rejected by ${outcome.rejectedRoles.join(', ')}`;
    case 'revoked':
      return `its certification was revoked; waiting for ${outcome.missingRoles.join(', ')} to approve it again`;
    case 'expired':
      return `its certification expired at ${outcome.expiresAt?.toISOString() ?? 'an unknown time'}`;
    case 'certified':
      return 'certified';
    case 'pending':
      return `waiting for ${outcome.missingRoles.join(', ')}`;
  }
}

/**
 * Builds the denial for a manifest: its state, the policy, what else was
 * tried (a listing index, its subject), and where to see the full status.
 */
function manifestDenial(scope: PullScope, evaluation: ManifestEvaluation): string {
  const { repository, policy } = scope;
  const parts = [`${repository}@${evaluation.digest} is not certified: ${stateText(evaluation.state)} (policy "${policy.name}")`];
  if (evaluation.listed) parts.push('no image index that lists it is certified either');

  const attachment = evaluation.attachment;
  if (attachment !== null && attachment.problem !== null) {
    parts.push(`it cannot be pulled as an attachment of ${attachment.subjects.join(', ')} because ${attachment.problem}`);
  }
  if (attachment !== null && attachment.problem === null) {
    parts.push(`its subject ${attachment.subjects.join(', ')} may not be pulled either`);
  }
  return `${parts.join('; ')}; see GET /api/v1/certifications/status?repository=${repository}&reference=${evaluation.digest}`;
}
