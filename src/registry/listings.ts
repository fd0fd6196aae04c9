import type { Knex } from 'knex';
import { RegistryError } from '../errors.js';
import { findRepositoryId } from './repositories.js';
import { parseDigest } from './reference.js';
import { isValidMediaType, MEDIA_TYPES } from './media-types.js';

/** Largest page of tags or repositories returned at once; a larger `n` is lowered to it. */
export const MAX_PAGE_SIZE = 1000;

/** Largest number of referrers listed for one subject. */
export const MAX_REFERRERS = 1000;

/** Largest total size of the referrers' annotations in one response, in bytes, so a response stays small in memory. */
export const MAX_REFERRERS_ANNOTATION_BYTES = 4 * 1024 * 1024;

export interface PageRequest {
  /** Requested page size; null when the client did not ask. */
  n: number | null;
  /** Return only names sorted after this one; null for the first page. */
  last: string | null;
}

export interface Page {
  items: string[];
  /** Last item of the page when more items follow, for the next page's `last`. */
  next: string | null;
}

/**
 * Parses the `n` and `last` query parameters. `n` must be a non-negative
 * integer; values above MAX_PAGE_SIZE are lowered to it.
 */
export function parsePageRequest(n: unknown, last: unknown): PageRequest {
  let size: number | null = null;
  if (n !== undefined) {
    if (typeof n !== 'string' || !/^\d{1,9}$/.test(n)) {
      throw new RegistryError('PAGINATION_NUMBER_INVALID', 'invalid page size n: expected a whole number from 0 to 1000', { n: typeof n === 'string' ? n.slice(0, 20) : null });
    }
    size = Math.min(Number(n), MAX_PAGE_SIZE);
  }
  if (last !== undefined && typeof last !== 'string') throw new RegistryError('PAGINATION_NUMBER_INVALID', 'invalid last parameter: give it once');
  // No stored name can contain U+0000, and PostgreSQL rejects it in a query.
  if (typeof last === 'string' && last.includes('\u0000')) throw new RegistryError('PAGINATION_NUMBER_INVALID', 'invalid last parameter: it must not contain the NUL character');
  return { n: size, last: typeof last === 'string' && last !== '' ? last : null };
}

async function pageOf(query: Knex.QueryBuilder, column: string, page: PageRequest): Promise<Page> {
  const size = page.n ?? MAX_PAGE_SIZE;
  if (size === 0) return { items: [], next: null };
  if (page.last !== null) query.where(column, '>', page.last);
  // Names sort bytewise (COLLATE "C"), as the specification's lexical order expects.
  const rows: Array<{ name: string }> = await query.orderByRaw(`${column} collate "C"`).limit(size + 1).select({ name: column });
  const items = rows.slice(0, size).map((row) => row.name);
  return { items, next: rows.length > size ? (items[items.length - 1] ?? null) : null };
}

/** Lists a repository's tags in lexical order. Throws NAME_UNKNOWN for a repository that does not exist. */
export async function listTags(db: Knex, repository: string, page: PageRequest): Promise<Page> {
  const repositoryId = await findRepositoryId(db, repository);
  if (repositoryId === null) throw new RegistryError('NAME_UNKNOWN', `repository ${repository} not found`, { repository });
  return pageOf(db('tags').where({ repository_id: repositoryId }), 'name', page);
}

/** Lists repository names in lexical order. */
export async function listRepositories(db: Knex, page: PageRequest): Promise<Page> {
  return pageOf(db('repositories'), 'name', page);
}

/**
 * Builds the referrers response: an OCI image index of the manifests whose
 * subject is the digest, keeping only those that `keep` returns.
 */
export async function listReferrers(
  db: Knex,
  repository: string,
  subjectText: string,
  artifactType: string | null,
  keep: (digests: string[]) => Promise<Set<string>>,
): Promise<{ index: object; filtered: boolean }> {
  const subject = parseDigest(subjectText);
  const repositoryId = await findRepositoryId(db, repository);
  // A filter that is not a media type matches no stored artifactType, and it may hold characters PostgreSQL rejects.
  const filterMatchesNothing = artifactType !== null && !isValidMediaType(artifactType);
  const candidates: Array<{ id: number; digest: string; media_type: string; size: number; artifact_type: string | null; annotation_bytes: number | null }> =
    repositoryId === null || filterMatchesNothing
      ? []
      : await db('manifests')
          .where({ repository_id: repositoryId, subject_digest: subject.value })
          .modify((query) => {
            if (artifactType !== null) query.where({ artifact_type: artifactType });
          })
          .orderBy('id')
          .limit(MAX_REFERRERS)
          .select('id', 'digest', 'media_type', 'size', 'artifact_type', db.raw('octet_length(annotations::text) as annotation_bytes'));
  const kept = await keep(candidates.map((row) => row.digest));

  // Annotations are loaded only for the entries that fit the byte budget.
  // NOTE: entries past MAX_REFERRERS or the budget are left out without a
  // Link to a next page.
  const listed: typeof candidates = [];
  let annotationBytes = 0;
  for (const row of candidates) {
    if (!kept.has(row.digest)) continue;
    annotationBytes += row.annotation_bytes ?? 0;
    if (annotationBytes > MAX_REFERRERS_ANNOTATION_BYTES) break;
    listed.push(row);
  }
  const annotationRows: Array<{ id: number; annotations: Record<string, string> | null }> =
    listed.length === 0 ? [] : await db('manifests').whereIn('id', listed.map((row) => row.id)).select('id', 'annotations');
  const annotationsById = new Map(annotationRows.map((row) => [Number(row.id), row.annotations]));
  const rows = listed.map((row) => ({ ...row, annotations: annotationsById.get(Number(row.id)) ?? null }));
  const manifests = rows
    .map((row) => ({
      mediaType: row.media_type,
      digest: row.digest,
      size: Number(row.size),
      ...(row.artifact_type ? { artifactType: row.artifact_type } : {}),
      ...(row.annotations ? { annotations: row.annotations } : {}),
    }));
  return { index: { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests }, filtered: artifactType !== null };
}
