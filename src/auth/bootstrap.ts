import type { Knex } from 'knex';
import type pino from 'pino';
import { generateSecret, hashPassword } from './passwords.js';

/** Name of the administrator created on first start. */
export const BOOTSTRAP_ADMIN = 'admin';

/**
 * Creates the `admin` user in the `admins` group when no user exists yet.
 * The password is PORTCULLIS_ADMIN_PASSWORD, or a generated one that is
 * written once to standard output (not to the JSON log) with the
 * instruction to change it. A restart finds users and changes nothing.
 * Returns the generated password, or null when none was generated.
 * `recordCreation` runs last in the transaction that creates the user, so
 * the audit event of the creation commits with it.
 */
export async function ensureBootstrapAdmin(
  db: Knex,
  configuredPassword: string | null,
  logger: pino.Logger,
  output: NodeJS.WritableStream = process.stdout,
  recordCreation: (trx: Knex.Transaction, username: string) => Promise<void> = async () => undefined,
): Promise<string | null> {
  const existing = await db('users').first('id');
  if (existing) return null;

  const password = configuredPassword ?? generateSecret();
  const created = await db.transaction(async (trx) => {
    const [user] = await trx('users').insert({ username: BOOTSTRAP_ADMIN, password_hash: await hashPassword(password) }).onConflict('username').ignore().returning('id');
    if (!user) return false;
    const group = await trx('groups').where({ name: 'admins' }).first('id');
    await trx('group_members').insert({ group_id: group.id, user_id: user.id });
    await recordCreation(trx, BOOTSTRAP_ADMIN);
    return true;
  });
  if (!created) return null;

  logger.info({ username: BOOTSTRAP_ADMIN, passwordSource: configuredPassword ? 'PORTCULLIS_ADMIN_PASSWORD' : 'generated' }, 'created the first administrator');
  if (configuredPassword) return null;
  output.write(
    `\nPortcullis created the user "${BOOTSTRAP_ADMIN}" with this generated password, shown only once:\n\n    ${password}\n\n` +
      `Log in with: skopeo login --tls-verify=false -u ${BOOTSTRAP_ADMIN} <host:port>\n` +
      `Change it now: npx portcullis user passwd ${BOOTSTRAP_ADMIN}, or PUT /api/v1/users/${BOOTSTRAP_ADMIN}/password\n\n`,
  );
  return password;
}
