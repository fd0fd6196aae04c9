import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * Returns the key of the HMAC in scan previews, creating it on first use.
 * Two replicas that create it at once keep the one that was stored first.
 */
export async function loadPreviewKey(db: Knex): Promise<Buffer> {
  await db('scan_preview_key').insert({ id: 1, preview_key: randomBytes(32) }).onConflict('id').ignore();
  const row: { preview_key: Buffer } | undefined = await db('scan_preview_key').where({ id: 1 }).first('preview_key');
  if (!row) throw new Error('the scan preview key is missing after it was created');
  return row.preview_key;
}
