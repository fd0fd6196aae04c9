import type { Knex } from 'knex';
import { matchesPattern } from '../auth/patterns.js';
import { loadPolicies, selectPolicy, type Policy } from '../policy/policies.js';
import { InvalidCertificationInputError } from './errors.js';
import type { CertificationRole } from './roles.js';

/** Page size of the review queue when the caller names none. */
export const DEFAULT_QUEUE_PAGE_SIZE = 50;

/** Largest page of the review queue. */
export const MAX_QUEUE_PAGE_SIZE = 200;

/** One page request: how many images, and where the previous page ended. */
export interface QueuePageRequest {
  limit: number;
  /** The `nextCursor` of the previous page, or null for the first page. */
  cursor: string | null;
}

/** An image that waits for a decision by the queue's role. */
export interface QueueItem {
  repository: string;
  digest: string;
  mediaType: string;
  tags: string[];
  pushedAt: Date;
  /** `revoked` when the digest has a revocation, `pending` otherwise. */
  state: 'pending' | 'revoked';
  policy: string;
  /** Required roles whose latest decision since the last revocation is not an approval, the queue's role among them. */
  missingRoles: string[];
}

export interface QueuePage {
  role: CertificationRole;
  items: QueueItem[];
  /** Pass as `cursor` to get the next page; null on the last page. */
  nextCursor: string | null;
}

/** Push time in UTC with microseconds, as the cursor carries it: PostgreSQL's own precision, so no image is skipped or repeated. */
const CURSOR_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** Signature, attestation and SBOM tags in the cosign convention; manifests with only such tags are attachments, not images. */
const ATTACHMENT_TAG_PATTERN = '^sha256-[a-f0-9]{64}\\.(sig|att|sbom)$';

interface Cursor {
  pushedAt: string;
  id: number;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.pushedAt, cursor.id])).toString('base64url');
}

function decodeCursor(text: string): Cursor {
  const invalid = new InvalidCertificationInputError([{ field: 'cursor', message: 'invalid cursor: pass the nextCursor of the previous page unchanged' }]);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw invalid;
  }
  if (!Array.isArray(value) || value.length !== 2) throw invalid;
  const [pushedAt, id] = value as [unknown, unknown];
  if (typeof pushedAt !== 'string' || !CURSOR_TIME_PATTERN.test(pushedAt) || typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw invalid;
  return { pushedAt, id };
}

/** Groups the repositories whose policy requires the role by that policy. */
async function repositoriesByPolicy(db: Knex, role: CertificationRole): Promise<Array<{ policy: Policy; repositoryIds: number[] }>> {
  const policies = await loadPolicies(db);
  // NOTE: every repository name is read and matched here on each call, which costs time in proportion to the number of repositories.
  const repositories: Array<{ id: number; name: string }> = await db('repositories').select('id', 'name');
  const groups = new Map<string, { policy: Policy; repositoryIds: number[] }>();
  for (const repository of repositories) {
    const policy = selectPolicy(policies, repository.name, matchesPattern);
    if (policy === null || !policy.requiredRoles.includes(role)) continue;
    const group = groups.get(policy.name) ?? { policy, repositoryIds: [] };
    group.repositoryIds.push(Number(repository.id));
    groups.set(policy.name, group);
  }
  return [...groups.values()];
}

interface QueueRow {
  id: number;
  repository: string;
  digest: string;
  media_type: string;
  tags: string[];
  created_at: Date;
  cursor_time: string;
  revoked: boolean;
  policy: string;
  missing_roles: string[];
}

/**
 * Lists the images that wait for a decision by a role, oldest push first.
 * These are the manifests in repositories whose policy requires the role
 * that have no decision by that role since their latest revocation. A
 * manifest whose latest decision by some required role is a rejection is
 * left out. What remains is pending, or revoked when it has a revocation.
 *
 * Attachments are left out because they are certified with their subject:
 * manifests with a `subject`, manifests whose tags all follow the cosign
 * `sha256-<hex>.sig|att|sbom` convention, and untagged child manifests of an
 * index. Decisions count only after the latest revocation, as in
 * computeCertificationState, but compared here at PostgreSQL's microsecond
 * precision.
 */
export async function listQueue(db: Knex, role: CertificationRole, page: QueuePageRequest): Promise<QueuePage> {
  const cursor = page.cursor === null ? null : decodeCursor(page.cursor);
  const scopes = await repositoriesByPolicy(db, role);
  if (scopes.length === 0) return { role, items: [], nextCursor: null };

  const scopeSql = scopes.map(() => 'select unnest(?::bigint[]) as repository_id, ?::text[] as required_roles, ?::text as policy').join(' union all ');
  const scopeBindings = scopes.flatMap((scope) => [scope.repositoryIds, scope.policy.requiredRoles, scope.policy.name]);
  const cursorSql = cursor === null ? '' : 'and (m.created_at, m.id) > (?::timestamptz, ?::bigint)';
  const cursorBindings = cursor === null ? [] : [cursor.pushedAt, cursor.id];

  const result = await db.raw(
    `with scope as (${scopeSql}),
     candidates as (
       select m.id, m.repository_id, m.digest, m.media_type, m.created_at, s.required_roles, s.policy,
              (select max(cr.created_at) from certification_revocations cr where cr.repository_id = m.repository_id and cr.digest = m.digest) as revoked_at,
              array(select t.name from tags t where t.manifest_id = m.id order by t.name) as tags
         from manifests m
         join scope s on s.repository_id = m.repository_id
        where m.subject_digest is null
          ${cursorSql}
     ),
     latest as (
       select distinct on (c.id, d.role) c.id as manifest_id, d.role, d.decision
         from candidates c
         join certification_decisions d
           on d.repository_id = c.repository_id and d.digest = c.digest and d.created_at > coalesce(c.revoked_at, '-infinity')
        order by c.id, d.role, d.id desc
     )
     select c.id, r.name as repository, c.digest, c.media_type, c.tags, c.created_at, c.policy,
            to_char(c.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as cursor_time,
            c.revoked_at is not null as revoked,
            array(select rr from unnest(c.required_roles) as rr
                   where not exists (select 1 from latest l where l.manifest_id = c.id and l.role = rr and l.decision = 'approve')) as missing_roles
       from candidates c
       join repositories r on r.id = c.repository_id
      where not exists (select 1 from latest l where l.manifest_id = c.id and l.role = ?)
        and not exists (select 1 from latest l where l.manifest_id = c.id and l.decision = 'reject' and l.role = any(c.required_roles))
        and (cardinality(c.tags) > 0 or not exists (select 1 from manifest_children mc where mc.child_id = c.id))
        and (cardinality(c.tags) = 0 or exists (select 1 from unnest(c.tags) as tag where tag !~ ?))
      order by c.created_at, c.id
      limit ?`,
    [...scopeBindings, ...cursorBindings, role, ATTACHMENT_TAG_PATTERN, page.limit + 1],
  );
  const rows = result.rows as QueueRow[];

  const pageRows = rows.slice(0, page.limit);
  const last = pageRows.at(-1);
  const items = pageRows.map(
    (row): QueueItem => ({
      repository: row.repository,
      digest: row.digest,
      mediaType: row.media_type,
      tags: row.tags,
      pushedAt: row.created_at,
      state: row.revoked ? 'revoked' : 'pending',
      policy: row.policy,
      missingRoles: row.missing_roles,
    }),
  );
  const nextCursor = rows.length > page.limit && last !== undefined ? encodeCursor({ pushedAt: last.cursor_time, id: Number(last.id) }) : null;
  return { role, items, nextCursor };
}
