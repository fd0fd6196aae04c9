import { readFile } from 'node:fs/promises';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { Knex } from 'knex';
import type pino from 'pino';
import { generateSigningKey, importSigningKey, type SigningKey } from './tokens.js';

/**
 * Loads the token signing keys: from the PEM files named in the settings (the
 * first signs, the others only verify, so keys rotate without logging anyone
 * out), or else the keys kept in the database, generating one on first start.
 * Replicas share database keys, and a warning logs that fact, because a replica with
 * its own key would reject every other replica's tokens.
 */
export async function loadSigningKeys(db: Knex, files: readonly string[], logger: pino.Logger): Promise<SigningKey[]> {
  if (files.length > 0) {
    const keys: SigningKey[] = [];
    for (const file of files) {
      let pem: string;
      try {
        pem = await readFile(file, 'utf8');
      } catch (error) {
        throw new Error(`TOKEN_SIGNING_KEY_FILES: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'read failed'}`, { cause: error });
      }
      keys.push(importSigningKey(pem));
    }
    logger.info({ keyIds: keys.map((key) => key.kid), signingKeyId: keys[0]?.kid }, 'token signing keys loaded from files');
    return keys;
  }

  const rows: Array<{ kid: string; algorithm: string; private_key_pem: string }> = await db('signing_keys').orderBy('created_at', 'desc').select('kid', 'algorithm', 'private_key_pem');
  if (rows.length === 0) {
    const generated = generateSigningKey();
    await db('signing_keys')
      .insert({
        kid: generated.kid,
        algorithm: generated.alg,
        private_key_pem: generated.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        public_key_pem: generated.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      })
      .onConflict('kid')
      .ignore();
    logger.warn(
      { keyId: generated.kid },
      'generated a token signing key and stored it in the database; every replica must use this database, or set TOKEN_SIGNING_KEY_FILES to key files they share',
    );
    return loadSigningKeys(db, files, logger);
  }

  logger.info({ keyIds: rows.map((row) => row.kid) }, 'token signing keys loaded from the database');
  return rows.map((row) => {
    const privateKey = createPrivateKey(row.private_key_pem);
    return { kid: row.kid, alg: row.algorithm as SigningKey['alg'], privateKey, publicKey: createPublicKey(privateKey) };
  });
}
