import type { Knex } from 'knex';
import { certificationStates } from '../certification/bulk-status.js';
import type { CertificationOutcome } from '../certification/state.js';
import type { Policy } from './policies.js';
import { attachmentLayers, attachmentProblem, type AttachmentRules } from './attachments.js';
import type { ArchiveDetector } from './layer-content.js';
import { StorageNotFoundError } from '../storage/blob-store.js';

/**
 * How far attachments of attachments are followed: a signature on an
 * attestation of an image is two levels.
 */
const MAX_ATTACHMENT_DEPTH = 4;

/** A cosign-style tag that attaches the manifest it points at to the manifest `sha256:<hex>`. */
const COSIGN_TAG = /^sha256-([0-9a-f]{64})\.(?:sig|att|sbom)$/;

/** The same pattern in PostgreSQL's regular expression syntax, to find such tags with the index on tags. */
const COSIGN_TAG_SQL = '^sha256-[0-9a-f]{64}\\.(sig|att|sbom)$';

/** The repository a pull is decided in, with the policy that applies to it. */
export interface PullScope {
  repository: string;
  repositoryId: number;
  policy: Policy;
  now: Date;
}

/** The certified manifest that makes another one pullable, and how. */
export interface Grounds {
  /** The certified digest: the manifest itself, an image index that lists it, or the subject an attachment leads to. */
  digest: string;
  via: 'certified' | 'index' | 'attachment';
}

/** An attachment: the digests it is attached to, and why it does not qualify, or null when it does. */
export interface AttachmentFacts {
  subjects: string[];
  problem: string | null;
}

/** Everything the gate learned about one manifest digest in one repository. */
export interface ManifestEvaluation {
  digest: string;
  /** The digest's own certification state under the policy. */
  state: CertificationOutcome;
  /** The certified manifest that makes it pullable, or null when none does. */
  grounds: Grounds | null;
  /** Whether an image index in the repository lists it. */
  listed: boolean;
  /** Set when it has a subject or a cosign-style tag points at it. */
  attachment: AttachmentFacts | null;
}

interface AttachmentRow {
  digest: string;
  subject_digest: string | null;
  content: Buffer;
  cosign_tags: string[];
}

/**
 * Decides which manifests of a repository may be pulled on the strength of
 * certification alone, with a fixed number of queries per level of
 * attachments, whatever the number of digests.
 *
 * A manifest is pullable when it is certified, or when an image index that
 * lists it (at any depth) is certified. A qualifying attachment is pullable
 * when its subject, or the digest that its cosign-style tag names, is. An
 * attachment qualifies only when its descriptors pass the rules and none of
 * its layer blobs is an archive by content.
 */
export class PullEvaluator {
  constructor(
    private readonly db: Knex,
    private readonly rules: AttachmentRules,
    private readonly archives: ArchiveDetector,
  ) {}

  /** Evaluates each digest. A digest with no manifest in the repository is pullable only by its own certification. */
  async evaluate(scope: PullScope, digests: readonly string[], depth = 0): Promise<Map<string, ManifestEvaluation>> {
    const unique = [...new Set(digests)];
    const result = new Map<string, ManifestEvaluation>();
    if (unique.length === 0) return result;

    const ancestors = await this.ancestors(scope, unique);
    const states = await certificationStates(this.db, scope.repositoryId, scope.policy, [...unique, ...[...ancestors.values()].flat()], scope.now);

    const undecided: string[] = [];
    for (const digest of unique) {
      const state = states.get(digest) as CertificationOutcome;
      const listedBy = ancestors.get(digest) ?? [];
      const certifiedIndex = listedBy.find((ancestor) => states.get(ancestor)?.state === 'certified');
      let grounds: Grounds | null = null;
      if (state.state === 'certified') grounds = { digest, via: 'certified' };
      else if (certifiedIndex !== undefined) grounds = { digest: certifiedIndex, via: 'index' };

      result.set(digest, { digest, state, grounds, listed: listedBy.length > 0, attachment: null });
      if (grounds === null) undecided.push(digest);
    }
    if (undecided.length === 0) return result;

    await this.evaluateAttachments(scope, undecided, result, depth);
    return result;
  }

  /** Fills in the attachment facts of the undecided digests, and their grounds when a qualifying one has a pullable subject. */
  private async evaluateAttachments(scope: PullScope, undecided: string[], result: Map<string, ManifestEvaluation>, depth: number): Promise<void> {
    const rows = await this.attachmentRows(scope, undecided);
    const qualifying: Array<{ evaluation: ManifestEvaluation; subjects: string[] }> = [];
    for (const row of rows) {
      const evaluation = result.get(row.digest) as ManifestEvaluation;
      const subjects = [...new Set([...(row.subject_digest ? [row.subject_digest] : []), ...subjectsOfCosignTags(row.cosign_tags)])];
      const problem = attachmentProblem(row.content, this.rules) ?? (await this.archiveLayerProblem(row.content));
      evaluation.attachment = { subjects, problem };
      if (problem === null) qualifying.push({ evaluation, subjects });
    }
    if (qualifying.length === 0 || depth >= MAX_ATTACHMENT_DEPTH) return;

    const subjects = await this.evaluate(scope, qualifying.flatMap((entry) => entry.subjects), depth + 1);
    for (const { evaluation, subjects: own } of qualifying) {
      const granted = own.map((subject) => subjects.get(subject)?.grounds).find((grounds) => grounds !== null && grounds !== undefined);
      if (granted) evaluation.grounds = { digest: granted.digest, via: 'attachment' };
    }
  }

  /**
   * Returns why an attachment does not qualify by the content of its layers,
   * or null when none of them is an archive. A layer declared as a signature
   * or an SBOM is still unpacked by clients that detect gzip or tar from the
   * bytes, so an archive layer would let a filesystem pass as an attachment.
   */
  private async archiveLayerProblem(content: Buffer): Promise<string | null> {
    for (const layer of attachmentLayers(content)) {
      let format: string | null;
      try {
        format = await this.archives.formatOf(layer.digest, layer.size);
      } catch (error) {
        if (error instanceof StorageNotFoundError) return `its layer ${layer.digest} is missing from blob storage, so its content cannot be checked`;
        throw error;
      }
      if (format !== null) return `its layer ${layer.digest} is a ${format} archive by content`;
    }
    return null;
  }

  /** Returns, for each digest with a manifest in the repository, the digests of every image index that lists it, directly or through other indexes. */
  private async ancestors(scope: PullScope, digests: string[]): Promise<Map<string, string[]>> {
    const { rows }: { rows: Array<{ start_digest: string; digest: string }> } = await this.db.raw(
      `with recursive lineage(start_digest, id) as (
         select m.digest, m.id from manifests m where m.repository_id = ? and m.digest = any(?::text[])
         union
         select l.start_digest, c.parent_id from lineage l join manifest_children c on c.child_id = l.id
       )
       select l.start_digest, m.digest from lineage l join manifests m on m.id = l.id where m.digest <> l.start_digest`,
      [scope.repositoryId, digests],
    );
    const ancestors = new Map<string, string[]>();
    for (const row of rows) {
      const list = ancestors.get(row.start_digest) ?? [];
      list.push(row.digest);
      ancestors.set(row.start_digest, list);
    }
    return ancestors;
  }

  /** Loads the manifests among `digests` that have a subject or a cosign-style tag, with their content. */
  private async attachmentRows(scope: PullScope, digests: string[]): Promise<AttachmentRow[]> {
    const { rows }: { rows: AttachmentRow[] } = await this.db.raw(
      `select m.digest, m.subject_digest, m.content,
              array(select t.name from tags t where t.manifest_id = m.id and t.name ~ ?) as cosign_tags
         from manifests m
        where m.repository_id = ? and m.digest = any(?::text[])
          and (m.subject_digest is not null or exists (select 1 from tags t where t.manifest_id = m.id and t.name ~ ?))`,
      [COSIGN_TAG_SQL, scope.repositoryId, digests, COSIGN_TAG_SQL],
    );
    return rows;
  }
}

/** Returns the digests that cosign-style tags name: `sha256-<hex>.sig` names `sha256:<hex>`. */
function subjectsOfCosignTags(tags: readonly string[]): string[] {
  return tags.flatMap((tag) => {
    const match = COSIGN_TAG.exec(tag);
    return match ? [`sha256:${match[1] as string}`] : [];
  });
}
