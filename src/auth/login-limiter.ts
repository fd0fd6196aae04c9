import type { Knex } from 'knex';

export interface LoginLimits {
  maxFailuresPerUser: number;
  maxFailuresPerAddress: number;
  windowSeconds: number;
}

/** Raised when a username or a client address had too many failed logins in the window. */
export class TooManyLoginFailuresError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super(`too many failed logins: try again in ${retryAfterSeconds} seconds`);
    this.name = 'TooManyLoginFailuresError';
  }
}

/**
 * Counts failed logins per username and per client address in fixed windows
 * kept in PostgreSQL, so every replica enforces the same limits.
 */
export class LoginLimiter {
  constructor(
    private readonly db: Knex,
    private readonly limits: LoginLimits,
  ) {}

  /** Throws TooManyLoginFailuresError when either counter is at its limit. */
  async check(username: string, address: string): Promise<void> {
    const rows: Array<{ key: string; failures: number; retry_after: number }> = await this.db('login_failures')
      .whereIn('key', [this.userKey(username), this.addressKey(address)])
      .andWhere('window_start', '>', this.db.raw(`now() - make_interval(secs => ?)`, [this.limits.windowSeconds]))
      .select('key', 'failures', this.db.raw(`ceil(extract(epoch from window_start + make_interval(secs => ?) - now()))::int as retry_after`, [this.limits.windowSeconds]));
    for (const row of rows) {
      const limit = row.key === this.userKey(username) ? this.limits.maxFailuresPerUser : this.limits.maxFailuresPerAddress;
      if (row.failures >= limit) throw new TooManyLoginFailuresError(Math.max(1, row.retry_after));
    }
  }

  /** Counts one failed login for the username and the address. */
  async recordFailure(username: string, address: string): Promise<void> {
    for (const key of [this.userKey(username), this.addressKey(address)]) {
      await this.db.raw(
        `insert into login_failures (key, window_start, failures) values (?, now(), 1)
         on conflict (key) do update set
           failures = case when login_failures.window_start > now() - make_interval(secs => ?) then login_failures.failures + 1 else 1 end,
           window_start = case when login_failures.window_start > now() - make_interval(secs => ?) then login_failures.window_start else now() end`,
        [key, this.limits.windowSeconds, this.limits.windowSeconds],
      );
    }
  }

  /** Clears the username's counter after a successful login; the address keeps its count. */
  async recordSuccess(username: string): Promise<void> {
    await this.db('login_failures').where({ key: this.userKey(username) }).delete();
  }

  private userKey(username: string): string {
    return `user:${username.slice(0, 200)}`;
  }

  private addressKey(address: string): string {
    return `address:${address}`;
  }
}
