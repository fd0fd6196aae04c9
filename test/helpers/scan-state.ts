/**
 * Secret scan state for tests about certification rather than scanning: a
 * Security approval needs a finished scan, so those tests record one
 * straight in the database instead of running a scan worker.
 */
import type { Knex } from 'knex';
import { SCAN_ENGINE_VERSION } from '../../src/scan/scheduler.js';

/** Records a finished scan without findings for an image manifest digest, replacing any scan state it had. */
export async function recordCleanScan(db: Knex, digest: string, mediaType = 'application/vnd.oci.image.manifest.v1+json'): Promise<void> {
  const row = { digest, media_type: mediaType, state: 'clean', engine_version: SCAN_ENGINE_VERSION, error: null, lease_owner: null, lease_expires_at: null, finished_at: db.fn.now(), updated_at: db.fn.now() };
  await db('scans').insert(row).onConflict('digest').merge();
  await db('scan_findings').where({ digest }).delete();
}
