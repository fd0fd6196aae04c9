import type { Knex } from 'knex';
import type { RegistryEventSink } from '../audit/registry-events.js';
import type { RequestContext } from '../context.js';
import { databaseErrorKind } from '../db/errors.js';
import { AccountConflictError, AccountNotFoundError, InvalidAccountInputError, quoted, type AccountResource, type InputProblem } from './account-errors.js';
import { ACCOUNT_NAME_PATTERN, RESERVED_NAMES, ROBOT_PREFIX } from './identity-store.js';
import { generateSecret, hashPassword } from './passwords.js';
import { patternProblem, matchesPattern } from './patterns.js';
import { BUILT_IN_GROUPS, GLOBAL_PATTERN, GLOBAL_PERMISSIONS, REPOSITORY_PERMISSIONS, grantProblems } from './permissions.js';

export { AccountConflictError, AccountNotFoundError, InvalidAccountInputError, type AccountResource, type InputProblem } from './account-errors.js';

/** Minimum password length in characters (Unicode code points). */
export const MIN_PASSWORD_LENGTH = 12;

/** Maximum password length in characters, so that no input makes the server hash megabytes. */
export const MAX_PASSWORD_LENGTH = 1024;

/** Maximum length of a group description in characters. */
export const MAX_DESCRIPTION_LENGTH = 1024;

/** The author of a change: the request or command it belongs to, and the name the audit trail records as `by`. */
export interface Actor {
  context: RequestContext;
  name: string;
}

/** A user as account management shows it. The password hash never leaves the database layer. */
export interface UserView {
  username: string;
  groups: string[];
  disabled: boolean;
  disabledAt: Date | null;
  createdAt: Date;
  /** When the password last changed; tokens issued before it are not renewed. */
  credentialsChangedAt: Date;
}

/** The state of a robot account: it authenticates only while active. */
export type RobotStatus = 'active' | 'expired' | 'revoked';

/** A robot account as account management shows it, without its secret hash. */
export interface RobotView {
  name: string;
  /** The username it logs in with: `robot$<name>`. */
  loginName: string;
  status: RobotStatus;
  groups: string[];
  expiresAt: Date | null;
  revokedAt: Date | null;
  createdBy: string | null;
  createdAt: Date;
}

/** A group with its members as `user:<name>` and `robot:<name>`. */
export interface GroupView {
  name: string;
  description: string;
  /** Built-in groups carry a global permission and cannot be deleted. */
  builtIn: boolean;
  members: string[];
  createdAt: Date;
}

/** A grant of permissions on the repositories that match a pattern. */
export interface GrantView {
  id: number;
  /** `user:<name>`, `robot:<name>` or `group:<name>`. */
  subject: string;
  /** The repository pattern. */
  repositories: string;
  permissions: string[];
  createdBy: string | null;
  createdAt: Date;
}

/** Kinds of account a grant or a group membership names. */
export type SubjectKind = 'user' | 'robot' | 'group';

/** A parsed `<kind>:<name>` reference. */
export interface SubjectReference {
  kind: SubjectKind;
  name: string;
}

const SUBJECT_TABLES = {
  user: { table: 'users', nameColumn: 'username', idColumn: 'user_id' },
  robot: { table: 'robots', nameColumn: 'name', idColumn: 'robot_id' },
  group: { table: 'groups', nameColumn: 'name', idColumn: 'group_id' },
} as const satisfies Record<SubjectKind, { table: string; nameColumn: string; idColumn: string }>;

/** The order permissions are stored and shown in, so that equal sets compare equal. */
const PERMISSION_ORDER: readonly string[] = [...REPOSITORY_PERMISSIONS, ...GLOBAL_PERMISSIONS];

/** Built-in groups whose members hold `admin`. */
const ADMIN_GROUPS = Object.entries(BUILT_IN_GROUPS)
  .filter(([, permission]) => permission === 'admin')
  .map(([group]) => group);

/** Arbitrary constant naming the advisory lock that serialises changes which can take `admin` away from users. */
const ADMINISTRATOR_LOCK_ID = 0x61646d6e;

/** Parses `<kind>:<name>` for one of the given kinds; returns null for anything else. */
export function parseSubject(text: string, kinds: readonly SubjectKind[]): SubjectReference | null {
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  const kind = text.slice(0, colon) as SubjectKind;
  const name = text.slice(colon + 1);
  if (!kinds.includes(kind) || !ACCOUNT_NAME_PATTERN.test(name)) return null;
  return { kind, name };
}

/** Formats a subject reference as `<kind>:<name>`. */
export function formatSubject(subject: SubjectReference): string {
  return `${subject.kind}:${subject.name}`;
}

/** Returns why a name is no valid username, robot name or group name; empty when it is valid. */
export function accountNameProblems(field: string, name: string): InputProblem[] {
  if (name.startsWith(ROBOT_PREFIX)) return [{ field, message: `must not start with "${ROBOT_PREFIX}", which marks robot login names` }];
  if (!ACCOUNT_NAME_PATTERN.test(name)) {
    return [{ field, message: `${quoted(name)} is invalid: use 1 to 64 lowercase letters, digits, ".", "_" or "-", starting with a letter` }];
  }
  if (RESERVED_NAMES.has(name)) return [{ field, message: `${quoted(name)} is reserved: choose another name` }];
  return [];
}

/** Returns why a password is not acceptable; empty when it is. The password itself is never part of a message. */
export function passwordProblems(field: string, password: string): InputProblem[] {
  const length = Array.from(password).length;
  if (length < MIN_PASSWORD_LENGTH) return [{ field, message: `must be at least ${MIN_PASSWORD_LENGTH} characters long` }];
  if (length > MAX_PASSWORD_LENGTH) return [{ field, message: `must be at most ${MAX_PASSWORD_LENGTH} characters long` }];
  return [];
}

function subjectProblem(field: string, kinds: readonly SubjectKind[]): InputProblem {
  return { field, message: `must be ${kinds.map((kind) => `"${kind}:<name>"`).join(' or ')}` };
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

function sortPermissions(permissions: readonly string[]): string[] {
  return unique(permissions).sort((a, b) => PERMISSION_ORDER.indexOf(a) - PERMISSION_ORDER.indexOf(b));
}

/** Runs an insert and turns a unique violation into the conflict the caller builds. */
async function insertOrConflict<T>(insert: PromiseLike<T>, conflict: () => AccountConflictError): Promise<T> {
  try {
    return await insert;
  } catch (error) {
    if (databaseErrorKind(error) === 'unique_violation') throw conflict();
    throw error;
  }
}

interface UserRow {
  username: string;
  groups: string[];
  disabled_at: Date | null;
  created_at: Date;
  credentials_changed_at: Date;
}

interface RobotRow {
  name: string;
  status: RobotStatus;
  groups: string[];
  expires_at: Date | null;
  revoked_at: Date | null;
  created_by: string | null;
  created_at: Date;
}

interface GroupRow {
  name: string;
  description: string;
  built_in: boolean;
  members: string[];
  created_at: Date;
}

interface GrantRow {
  id: number;
  subject: string;
  pattern: string;
  permissions: string[];
  created_by: string | null;
  created_at: Date;
}

function userView(row: UserRow): UserView {
  return {
    username: row.username,
    groups: row.groups,
    disabled: row.disabled_at !== null,
    disabledAt: row.disabled_at,
    createdAt: row.created_at,
    credentialsChangedAt: row.credentials_changed_at,
  };
}

function robotView(row: RobotRow): RobotView {
  return {
    name: row.name,
    loginName: `${ROBOT_PREFIX}${row.name}`,
    status: row.status,
    groups: row.groups,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
}

function groupView(row: GroupRow): GroupView {
  return { name: row.name, description: row.description, builtIn: row.built_in, members: row.members, createdAt: row.created_at };
}

function grantView(row: GrantRow): GrantView {
  return { id: row.id, subject: row.subject, repositories: row.pattern, permissions: row.permissions, createdBy: row.created_by, createdAt: row.created_at };
}

/** Filters of listGrants; each one given narrows the list. */
export interface GrantFilter {
  /** Only grants held by this `user:`, `robot:` or `group:` subject itself (not through its groups). */
  subject?: string;
  /** Only grants with exactly this pattern. */
  repositories?: string;
  /** Only grants whose pattern matches this repository name. */
  repository?: string;
}

/**
 * Creates, changes and lists users, robot accounts, groups, memberships and
 * grants. Every change runs in one transaction with its `account.change`
 * event. A change that would leave no enabled user with the `admin`
 * permission, while one had it before, is rejected.
 */
export class AccountService {
  constructor(private readonly deps: { db: Knex; events: RegistryEventSink }) {}

  // Users

  /** Creates a user with a hashed password in the given groups. */
  async createUser(actor: Actor, input: { username: string; password: string; groups?: readonly string[] }): Promise<UserView> {
    const problems = [...accountNameProblems('username', input.username), ...passwordProblems('password', input.password)];
    if (problems.length > 0) throw new InvalidAccountInputError(problems);
    const groups = unique(input.groups ?? []);
    // Hashing takes a noticeable fraction of a second, so it happens before the transaction takes a connection from the pool.
    const passwordHash = await hashPassword(input.password);

    return this.deps.db.transaction(async (trx) => {
      const groupIds = await this.groupIds(trx, groups, 'groups');
      const [user] = await insertOrConflict(
        trx('users').insert({ username: input.username, password_hash: passwordHash }).returning('id'),
        () => new AccountConflictError('user', input.username, 'exists', `user ${quoted(input.username)} already exists`),
      );
      if (groupIds.length > 0) await trx('group_members').insert(groupIds.map((groupId) => ({ group_id: groupId, user_id: user.id })));
      await this.record(actor, 'user.create', `user:${input.username}`, trx);
      return this.readUser(trx, input.username);
    });
  }

  /** Lists every user, ordered by username. */
  async listUsers(): Promise<UserView[]> {
    const rows = (await this.userQuery(this.deps.db)) as UserRow[];
    return rows.map(userView);
  }

  /** Returns one user; throws AccountNotFoundError when there is none with this name. */
  async getUser(username: string): Promise<UserView> {
    return this.readUser(this.deps.db, username);
  }

  /**
   * Disables or enables a user and replaces its group memberships. A disabled
   * user cannot log in, and its tokens stop working at once.
   */
  async updateUser(actor: Actor, username: string, changes: { disabled?: boolean; groups?: readonly string[] }): Promise<UserView> {
    return this.deps.db.transaction(async (trx) =>
      this.keepingAnAdministrator(trx, 'user', username, async () => {
        const user: { id: number; disabled_at: Date | null } | undefined = await trx('users').where({ username }).forUpdate().first('id', 'disabled_at');
        if (!user) throw new AccountNotFoundError('user', username);

        if (changes.disabled === true && user.disabled_at === null) {
          await trx('users').where({ id: user.id }).update({ disabled_at: trx.fn.now() });
          await this.record(actor, 'user.disable', `user:${username}`, trx);
        }
        if (changes.disabled === false && user.disabled_at !== null) {
          await trx('users').where({ id: user.id }).update({ disabled_at: null });
          await this.record(actor, 'user.enable', `user:${username}`, trx);
        }
        if (changes.groups !== undefined) await this.replaceGroups(actor, trx, user.id, username, unique(changes.groups));
        return this.readUser(trx, username);
      }),
    );
  }

  /** Disables a user; see updateUser. */
  async disableUser(actor: Actor, username: string): Promise<UserView> {
    return this.updateUser(actor, username, { disabled: true });
  }

  /**
   * Sets a new password and moves `credentials_changed_at` to now, so refresh
   * tokens issued before stop being renewed. The caller checks whether the
   * actor may change this user's password.
   */
  async changePassword(actor: Actor, username: string, password: string): Promise<void> {
    const problems = passwordProblems('password', password);
    if (problems.length > 0) throw new InvalidAccountInputError(problems);
    const passwordHash = await hashPassword(password);

    await this.deps.db.transaction(async (trx) => {
      const changed = await trx('users').where({ username }).update({ password_hash: passwordHash, credentials_changed_at: trx.fn.now() });
      if (changed === 0) throw new AccountNotFoundError('user', username);
      await this.record(actor, 'user.password.change', `user:${username}`, trx);
    });
  }

  // Robots

  /**
   * Creates a robot account with a generated secret. The secret is returned
   * here only, because the database keeps just its hash.
   */
  async createRobot(actor: Actor, input: { name: string; expiresAt?: Date | null }): Promise<{ robot: RobotView; secret: string }> {
    const problems = accountNameProblems('name', input.name);
    const expiresAt = input.expiresAt ?? null;
    if (expiresAt !== null && Number.isNaN(expiresAt.getTime())) problems.push({ field: 'expiresAt', message: 'must be a valid date and time' });
    else if (expiresAt !== null && expiresAt.getTime() <= Date.now()) problems.push({ field: 'expiresAt', message: 'must be in the future' });
    if (problems.length > 0) throw new InvalidAccountInputError(problems);

    const secret = generateSecret();
    const secretHash = await hashPassword(secret);
    const robot = await this.deps.db.transaction(async (trx) => {
      await insertOrConflict(
        trx('robots').insert({ name: input.name, secret_hash: secretHash, expires_at: expiresAt, created_by: actor.name }),
        () => new AccountConflictError('robot', input.name, 'exists', `robot ${quoted(input.name)} already exists (revoked robots keep their name)`),
      );
      await this.record(actor, 'robot.create', `robot:${input.name}`, trx);
      return this.readRobot(trx, input.name);
    });
    return { robot, secret };
  }

  /** Lists every robot account, revoked and expired ones included, ordered by name. */
  async listRobots(): Promise<RobotView[]> {
    const rows = (await this.robotQuery(this.deps.db)) as RobotRow[];
    return rows.map(robotView);
  }

  /** Returns one robot account; throws AccountNotFoundError when there is none with this name. */
  async getRobot(name: string): Promise<RobotView> {
    return this.readRobot(this.deps.db, name);
  }

  /**
   * Revokes a robot account: it can no longer log in and its tokens stop
   * working. The row stays for the audit trail. Revoking a revoked robot
   * changes nothing.
   */
  async revokeRobot(actor: Actor, name: string): Promise<RobotView> {
    return this.deps.db.transaction(async (trx) => {
      const robot: { id: number; revoked_at: Date | null } | undefined = await trx('robots').where({ name }).forUpdate().first('id', 'revoked_at');
      if (!robot) throw new AccountNotFoundError('robot', name);
      if (robot.revoked_at === null) {
        await trx('robots').where({ id: robot.id }).update({ revoked_at: trx.fn.now() });
        await this.record(actor, 'robot.revoke', `robot:${name}`, trx);
      }
      return this.readRobot(trx, name);
    });
  }

  // Groups

  /** Creates a custom group. Custom groups carry only the grants given to them. */
  async createGroup(actor: Actor, input: { name: string; description?: string }): Promise<GroupView> {
    const problems = accountNameProblems('name', input.name);
    const description = input.description ?? '';
    if (description.length > MAX_DESCRIPTION_LENGTH) problems.push({ field: 'description', message: `must be at most ${MAX_DESCRIPTION_LENGTH} characters long` });
    if (problems.length > 0) throw new InvalidAccountInputError(problems);

    return this.deps.db.transaction(async (trx) => {
      await insertOrConflict(trx('groups').insert({ name: input.name, description }), () => new AccountConflictError('group', input.name, 'exists', `group ${quoted(input.name)} already exists`));
      await this.record(actor, 'group.create', `group:${input.name}`, trx);
      return this.readGroup(trx, input.name);
    });
  }

  /** Lists every group with its members, ordered by name. */
  async listGroups(): Promise<GroupView[]> {
    const rows = (await this.groupQuery(this.deps.db)) as GroupRow[];
    return rows.map(groupView);
  }

  /** Returns one group; throws AccountNotFoundError when there is none with this name. */
  async getGroup(name: string): Promise<GroupView> {
    return this.readGroup(this.deps.db, name);
  }

  /** Deletes a custom group with its memberships and grants. Built-in groups cannot be deleted. */
  async deleteGroup(actor: Actor, name: string): Promise<void> {
    await this.deps.db.transaction(async (trx) =>
      this.keepingAnAdministrator(trx, 'group', name, async () => {
        const group: { id: number; built_in: boolean } | undefined = await trx('groups').where({ name }).forUpdate().first('id', 'built_in');
        if (!group) throw new AccountNotFoundError('group', name);
        if (group.built_in) throw new AccountConflictError('group', name, 'built_in', `group ${quoted(name)} is built in and cannot be deleted`);

        await trx('groups').where({ id: group.id }).delete();
        await this.record(actor, 'group.delete', `group:${name}`, trx);
      }),
    );
  }

  /**
   * Adds `user:<name>` or `robot:<name>` to a group. Returns false when it was
   * a member already, which changes nothing.
   */
  async addMember(actor: Actor, groupName: string, member: string): Promise<boolean> {
    const reference = parseSubject(member, ['user', 'robot']);
    if (!reference) throw new InvalidAccountInputError([subjectProblem('member', ['user', 'robot'])]);

    return this.deps.db.transaction(async (trx) => {
      const groupId = await this.subjectId(trx, { kind: 'group', name: groupName });
      if (groupId === null) throw new AccountNotFoundError('group', groupName);
      const memberId = await this.subjectId(trx, reference);
      if (memberId === null) throw new AccountNotFoundError(reference.kind, reference.name);

      const inserted = await trx('group_members')
        .insert({ group_id: groupId, [SUBJECT_TABLES[reference.kind].idColumn]: memberId })
        .onConflict(['group_id', SUBJECT_TABLES[reference.kind].idColumn])
        .ignore()
        .returning('id');
      if (inserted.length === 0) return false;
      await this.record(actor, 'group.member.add', `group:${groupName} ${member}`, trx);
      return true;
    });
  }

  /** Removes `user:<name>` or `robot:<name>` from a group; throws AccountNotFoundError when it is no member. */
  async removeMember(actor: Actor, groupName: string, member: string): Promise<void> {
    const reference = parseSubject(member, ['user', 'robot']);
    if (!reference) throw new InvalidAccountInputError([subjectProblem('member', ['user', 'robot'])]);

    await this.deps.db.transaction(async (trx) =>
      this.keepingAnAdministrator(trx, 'member', member, async () => {
        const groupId = await this.subjectId(trx, { kind: 'group', name: groupName });
        if (groupId === null) throw new AccountNotFoundError('group', groupName);
        const memberId = await this.subjectId(trx, reference);
        if (memberId === null) throw new AccountNotFoundError(reference.kind, reference.name);

        const removed = await trx('group_members')
          .where({ group_id: groupId, [SUBJECT_TABLES[reference.kind].idColumn]: memberId })
          .delete();
        if (removed === 0) throw new AccountNotFoundError('member', member, `${member} is not a member of group ${quoted(groupName)}`);
        await this.record(actor, 'group.member.remove', `group:${groupName} ${member}`, trx);
      }),
    );
  }

  // Grants

  /**
   * Grants permissions on the repositories that match a pattern to a user,
   * robot or group. The grant is checked with grantProblems first. An
   * identical grant for the same subject is a conflict.
   */
  async createGrant(actor: Actor, input: { subject: string; repositories: string; permissions: readonly string[] }): Promise<GrantView> {
    const problems: InputProblem[] = [];
    const subject = parseSubject(input.subject, ['user', 'robot', 'group']);
    if (!subject) problems.push(subjectProblem('subject', ['user', 'robot', 'group']));
    const permissions = sortPermissions(input.permissions);
    if (permissions.length === 0) problems.push({ field: 'permissions', message: 'must name at least one permission' });
    const patternMessage = patternProblem(input.repositories);
    for (const message of grantProblems({ pattern: input.repositories, permissions })) {
      const field = patternMessage !== undefined && message.includes(patternMessage) ? 'repositories' : 'permissions';
      problems.push({ field, message });
    }
    if (!subject || problems.length > 0) throw new InvalidAccountInputError(problems);

    return this.deps.db.transaction(async (trx) => {
      // Locking the subject's row serialises grant creation per subject, so two identical requests cannot both insert.
      const subjectId = await this.subjectId(trx, subject, { lock: true });
      if (subjectId === null) throw new InvalidAccountInputError([{ field: 'subject', message: `${subject.kind} ${quoted(subject.name)} not found` }]);
      const idColumn = SUBJECT_TABLES[subject.kind].idColumn;

      const identical: { id: number } | undefined = await trx('grants')
        .where({ [idColumn]: subjectId, pattern: input.repositories })
        .andWhere('permissions', '=', trx.raw(`array[${permissions.map(() => '?').join(', ')}]::text[]`, permissions))
        .first('id');
      if (identical) {
        throw new AccountConflictError('grant', String(identical.id), 'exists', `${input.subject} already has grant ${identical.id} with these permissions on ${quoted(input.repositories)}`);
      }

      const [row] = await trx('grants').insert({ [idColumn]: subjectId, pattern: input.repositories, permissions, created_by: actor.name }).returning('id');
      await this.record(actor, 'grant.create', `grant:${row.id} ${input.subject} ${input.repositories} ${permissions.join(',')}`, trx);
      return this.readGrant(trx, Number(row.id));
    });
  }

  /** Returns one grant; throws AccountNotFoundError when there is none with this id. */
  async getGrant(id: number): Promise<GrantView> {
    return this.readGrant(this.deps.db, id);
  }

  /** Lists grants ordered by id, narrowed by the filter. An invalid subject filter is an input error. */
  async listGrants(filter: GrantFilter = {}): Promise<GrantView[]> {
    const query = this.grantQuery(this.deps.db);
    if (filter.subject !== undefined) {
      const subject = parseSubject(filter.subject, ['user', 'robot', 'group']);
      if (!subject) throw new InvalidAccountInputError([subjectProblem('subject', ['user', 'robot', 'group'])]);
      const { idColumn, nameColumn } = SUBJECT_TABLES[subject.kind];
      const alias = { user: 'u', robot: 'r', group: 'g' }[subject.kind];
      query.whereNotNull(`gr.${idColumn}`).andWhere(`${alias}.${nameColumn}`, subject.name);
    }
    if (filter.repositories !== undefined) query.andWhere('gr.pattern', filter.repositories);

    const rows = (await query) as GrantRow[];
    const repository = filter.repository;
    const matching = repository === undefined ? rows : rows.filter((row) => matchesPattern(row.pattern, repository));
    return matching.map(grantView);
  }

  /** Deletes a grant by id; throws AccountNotFoundError when there is none. */
  async deleteGrant(actor: Actor, id: number): Promise<void> {
    await this.deps.db.transaction(async (trx) =>
      this.keepingAnAdministrator(trx, 'grant', String(id), async () => {
        const grant = await this.readGrant(trx, id);
        await trx('grants').where({ id }).delete();
        await this.record(actor, 'grant.delete', `grant:${id} ${grant.subject} ${grant.repositories} ${grant.permissions.join(',')}`, trx);
      }),
    );
  }

  // Helpers

  private async record(actor: Actor, change: string, target: string, trx: Knex.Transaction): Promise<void> {
    await this.deps.events.record(actor.context, { action: 'account.change', change, target, by: actor.name }, trx);
  }

  private async subjectId(db: Knex, subject: SubjectReference, options: { lock?: boolean } = {}): Promise<number | null> {
    const { table, nameColumn } = SUBJECT_TABLES[subject.kind];
    const query = db(table).where({ [nameColumn]: subject.name });
    if (options.lock) query.forUpdate();
    const row: { id: number } | undefined = await query.first('id');
    return row ? Number(row.id) : null;
  }

  /** Returns the ids of the named groups, or throws an input error that lists every unknown one. */
  private async groupIds(db: Knex, names: readonly string[], field: string): Promise<number[]> {
    if (names.length === 0) return [];
    const rows: Array<{ id: number; name: string }> = await db('groups').whereIn('name', names).select('id', 'name');
    const known = new Set(rows.map((row) => row.name));
    const unknown = names.filter((name) => !known.has(name));
    if (unknown.length > 0) throw new InvalidAccountInputError(unknown.map((name) => ({ field, message: `group ${quoted(name)} not found` })));
    return rows.map((row) => Number(row.id));
  }

  private async replaceGroups(actor: Actor, trx: Knex.Transaction, userId: number, username: string, groups: string[]): Promise<void> {
    const groupIds = await this.groupIds(trx, groups, 'groups');
    const removed = await trx('group_members').where({ user_id: userId }).whereNotIn('group_id', groupIds).delete();
    const added = groupIds.length === 0 ? [] : await trx('group_members').insert(groupIds.map((groupId) => ({ group_id: groupId, user_id: userId }))).onConflict(['group_id', 'user_id']).ignore().returning('id');
    if (removed > 0 || added.length > 0) await this.record(actor, 'user.groups.change', `user:${username} ${[...groups].sort().join(',')}`, trx);
  }

  /**
   * Runs a change that may take `admin` away from users and rejects it when
   * it leaves no enabled user with `admin` while there was one before. The
   * change runs under a transaction-level advisory lock that serialises such
   * changes, so two of them cannot each remove one of the last two
   * administrators. Every caller runs its whole transaction inside this
   * method, so the advisory lock comes before any row lock and these changes
   * cannot deadlock with each other.
   */
  private async keepingAnAdministrator<T>(trx: Knex.Transaction, resource: AccountResource, key: string, change: () => Promise<T>): Promise<T> {
    await trx.raw('select pg_advisory_xact_lock(?)', [ADMINISTRATOR_LOCK_ID]);
    const before = await this.administratorCount(trx);
    const result = await change();
    if (before === 0 || (await this.administratorCount(trx)) > 0) return result;
    throw new AccountConflictError(resource, key, 'last_administrator', 'the change would leave no enabled user with the admin permission: make another user an administrator first');
  }

  /** Counts enabled users that hold `admin`, by the same rules as globalPermissions. */
  private async administratorCount(db: Knex): Promise<number> {
    const adminGrant = `pattern = ? and 'admin' = any(permissions)`;
    const result = await db.raw(
      `select count(*)::int as count from users u
       where u.disabled_at is null and (
         exists (select 1 from grants where user_id = u.id and ${adminGrant})
         or exists (
           select 1 from group_members m join groups g on g.id = m.group_id
           where m.user_id = u.id
             and ((g.built_in and g.name in (${ADMIN_GROUPS.map(() => '?').join(', ')}))
                  or exists (select 1 from grants where group_id = g.id and ${adminGrant}))))`,
      [GLOBAL_PATTERN, ...ADMIN_GROUPS, GLOBAL_PATTERN],
    );
    return (result.rows as Array<{ count: number }>)[0]?.count ?? 0;
  }

  private userQuery(db: Knex) {
    return db('users as u')
      .leftJoin('group_members as m', 'm.user_id', 'u.id')
      .leftJoin('groups as g', 'g.id', 'm.group_id')
      .groupBy('u.id')
      .orderBy('u.username')
      .select('u.username', 'u.disabled_at', 'u.created_at', 'u.credentials_changed_at', db.raw(`coalesce(array_agg(g.name order by g.name) filter (where g.id is not null), '{}') as groups`));
  }

  private async readUser(db: Knex, username: string): Promise<UserView> {
    const [row] = (await this.userQuery(db).where('u.username', username)) as UserRow[];
    if (!row) throw new AccountNotFoundError('user', username);
    return userView(row);
  }

  private robotQuery(db: Knex) {
    return db('robots as r')
      .leftJoin('group_members as m', 'm.robot_id', 'r.id')
      .leftJoin('groups as g', 'g.id', 'm.group_id')
      .groupBy('r.id')
      .orderBy('r.name')
      .select(
        'r.name',
        'r.expires_at',
        'r.revoked_at',
        'r.created_by',
        'r.created_at',
        db.raw(`case when r.revoked_at is not null then 'revoked' when r.expires_at <= now() then 'expired' else 'active' end as status`),
        db.raw(`coalesce(array_agg(g.name order by g.name) filter (where g.id is not null), '{}') as groups`),
      );
  }

  private async readRobot(db: Knex, name: string): Promise<RobotView> {
    const [row] = (await this.robotQuery(db).where('r.name', name)) as RobotRow[];
    if (!row) throw new AccountNotFoundError('robot', name);
    return robotView(row);
  }

  private groupQuery(db: Knex) {
    const member = `case when u.id is not null then 'user:' || u.username else 'robot:' || r.name end`;
    return db('groups as g')
      .leftJoin('group_members as m', 'm.group_id', 'g.id')
      .leftJoin('users as u', 'u.id', 'm.user_id')
      .leftJoin('robots as r', 'r.id', 'm.robot_id')
      .groupBy('g.id')
      .orderBy('g.name')
      .select('g.name', 'g.description', 'g.built_in', 'g.created_at', db.raw(`coalesce(array_agg(${member} order by ${member}) filter (where m.id is not null), '{}') as members`));
  }

  private async readGroup(db: Knex, name: string): Promise<GroupView> {
    const [row] = (await this.groupQuery(db).where('g.name', name)) as GroupRow[];
    if (!row) throw new AccountNotFoundError('group', name);
    return groupView(row);
  }

  private grantQuery(db: Knex) {
    return db('grants as gr')
      .leftJoin('users as u', 'u.id', 'gr.user_id')
      .leftJoin('robots as r', 'r.id', 'gr.robot_id')
      .leftJoin('groups as g', 'g.id', 'gr.group_id')
      .orderBy('gr.id')
      .select(
        'gr.id',
        'gr.pattern',
        'gr.permissions',
        'gr.created_by',
        'gr.created_at',
        db.raw(`case when gr.user_id is not null then 'user:' || u.username when gr.robot_id is not null then 'robot:' || r.name else 'group:' || g.name end as subject`),
      );
  }

  private async readGrant(db: Knex, id: number): Promise<GrantView> {
    const [row] = (await this.grantQuery(db).where('gr.id', id)) as GrantRow[];
    if (!row) throw new AccountNotFoundError('grant', String(id));
    return grantView(row);
  }
}
