/**
 * The storage key layout, built in this module only:
 *
 *   blobs/<algorithm>/<first two hex chars>/<encoded>   verified blob bytes, by digest
 *   uploads/<session id>/...                            bytes of an unfinished upload
 *
 * Blob keys are content-addressed, so identical blobs pushed to different
 * repositories are stored once. Upload keys are temporary: an upload's bytes
 * reach a blob key only after their digest was verified.
 */

export const UPLOADS_PREFIX = 'uploads/';

/** Returns the key of a verified blob. The digest must already be validated. */
export function blobKey(digest: string): string {
  const [algorithm, encoded] = digest.split(':') as [string, string];
  return `blobs/${algorithm}/${encoded.slice(0, 2)}/${encoded}`;
}

/** Returns the staging key of an upload session. */
export function uploadKey(sessionId: string): string {
  return `${UPLOADS_PREFIX}${sessionId}/data`;
}

/** Extracts the session id from a key under UPLOADS_PREFIX, or returns null. */
export function sessionIdOfUploadKey(key: string): string | null {
  if (!key.startsWith(UPLOADS_PREFIX)) return null;
  const rest = key.slice(UPLOADS_PREFIX.length);
  const slash = rest.indexOf('/');
  return slash > 0 ? rest.slice(0, slash) : null;
}
