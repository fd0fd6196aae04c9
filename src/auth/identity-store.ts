import type { Knex } from 'knex';
import type { Grant } from './permissions.js';
import { verifyPassword, verifyPasswordOfUnknownUser } from './passwords.js';

/** Robot accounts log in as `robot$<name>`, which no username can be. */
export const ROBOT_PREFIX = 'robot$';

/** Usernames, robot names and custom group names: lowercase, starting with a letter, at most 64 characters. */
export const ACCOUNT_NAME_PATTERN = /^[a-z][a-z0-9._-]{0,63}$/;

/** Names no account may take, because tokens and logs use them for other meanings. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(['anonymous', 'robot', 'admin-bootstrap']);

/** An authenticated user or robot with everything needed to decide its access. */
export interface Principal {
  kind: 'user' | 'robot';
  id: number;
  /** Username, or the robot's name without the prefix. */
  name: string;
  /** The name it logs in with and the `sub` of its tokens: the username or `robot$<name>`. */
  subject: string;
  groups: string[];
  /** Its own grants and those of all its groups. */
  grants: Grant[];
  /** Tokens issued before this moment are not renewed. */
  credentialsChangedAt: Date;
}

interface AccountRow {
  id: number;
  name: string;
  secret_hash: string;
  credentials_changed_at: Date;
}

/** Reads identities for authentication; account management lives in accounts.ts. */
export class IdentityStore {
  constructor(private readonly db: Knex) {}

  /**
   * Returns the principal whose login name and secret match, or null. A
   * disabled user, a revoked or expired robot and an unknown name all give
   * null after the same amount of hashing work, so timing does not tell them
   * apart.
   */
  async authenticate(loginName: string, secret: string): Promise<Principal | null> {
    const row = await this.findActiveAccount(loginName);
    if (!row) return verifyPasswordOfUnknownUser(secret).then(() => null);
    const valid = await verifyPassword(secret, row.account.secret_hash);
    return valid ? this.principalOf(row.kind, row.account) : null;
  }

  /** Returns the active principal with this login name (token subject), or null when it is gone, disabled, revoked or expired. */
  async findPrincipal(subject: string): Promise<Principal | null> {
    const row = await this.findActiveAccount(subject);
    return row ? this.principalOf(row.kind, row.account) : null;
  }

  private async findActiveAccount(loginName: string): Promise<{ kind: 'user' | 'robot'; account: AccountRow } | null> {
    if (loginName.startsWith(ROBOT_PREFIX)) {
      const robot: AccountRow | undefined = await this.db('robots')
        .where({ name: loginName.slice(ROBOT_PREFIX.length) })
        .whereNull('revoked_at')
        .andWhere((query) => query.whereNull('expires_at').orWhere('expires_at', '>', this.db.fn.now()))
        .first('id', 'name', 'secret_hash', 'created_at as credentials_changed_at');
      return robot ? { kind: 'robot', account: robot } : null;
    }
    const user: AccountRow | undefined = await this.db('users')
      .where({ username: loginName })
      .whereNull('disabled_at')
      .first('id', 'username as name', 'password_hash as secret_hash', 'credentials_changed_at');
    return user ? { kind: 'user', account: user } : null;
  }

  private async principalOf(kind: 'user' | 'robot', account: AccountRow): Promise<Principal> {
    const memberColumn = kind === 'user' ? 'user_id' : 'robot_id';
    const groups: Array<{ id: number; name: string }> = await this.db('group_members as m').join('groups as g', 'g.id', 'm.group_id').where(`m.${memberColumn}`, account.id).select('g.id', 'g.name');
    const grantRows: Array<{ pattern: string; permissions: string[] }> = await this.db('grants')
      .where(memberColumn, account.id)
      .orWhereIn(
        'group_id',
        groups.map((group) => group.id),
      )
      .select('pattern', 'permissions');
    return {
      kind,
      id: Number(account.id),
      name: account.name,
      subject: kind === 'robot' ? `${ROBOT_PREFIX}${account.name}` : account.name,
      groups: groups.map((group) => group.name),
      grants: grantRows.map((row) => ({ pattern: row.pattern, permissions: row.permissions })),
      credentialsChangedAt: account.credentials_changed_at,
    };
  }
}
