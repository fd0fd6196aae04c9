import { createHmac, randomBytes } from 'node:crypto';
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

/** A login attempt whose secret is being checked in this process. */
export interface LoginAttempt {
  /** Other secrets for the same username being checked in this process when the attempt began. */
  readonly concurrentSecrets: number;
  /** Ends the attempt; call it once, after the outcome was recorded. */
  end(): void;
}

/**
 * Counts failed logins per username and per client address in fixed windows
 * kept in PostgreSQL, so every replica enforces the same limits.
 *
 * Failures are known only after the secret was checked, so a burst of
 * concurrent guesses would all pass a check of the stored counter. Each
 * process therefore also counts the distinct secrets it is checking for
 * each username and adds them to that username's failures. Identical
 * secrets count once, so many clients that share one robot's secret can log
 * in at the same moment.
 *
 * NOTE: the in-flight count is kept per process, so a burst spread over R
 * replicas can still get up to R times the remaining guesses checked. The
 * address counter has no in-flight count, because many users behind one NAT
 * address log in at once. Guesses spread over many usernames from one
 * address can therefore exceed it by the number in flight.
 */
export class LoginLimiter {
  /** Secrets being checked, per username: an HMAC of each secret under a key of this process, with its number of attempts. */
  readonly #secretsInFlight = new Map<string, Map<string, number>>();
  readonly #fingerprintKey = randomBytes(32);

  constructor(
    private readonly db: Knex,
    private readonly limits: LoginLimits,
  ) {}

  /** Registers an attempt before its secret is checked; pass its `concurrentSecrets` to check. */
  beginAttempt(username: string, secret: string): LoginAttempt {
    const key = this.userKey(username);
    const fingerprint = createHmac('sha256', this.#fingerprintKey).update(secret).digest('base64');
    const secrets = this.#secretsInFlight.get(key) ?? new Map<string, number>();
    this.#secretsInFlight.set(key, secrets);
    const concurrentSecrets = secrets.size - (secrets.has(fingerprint) ? 1 : 0);
    secrets.set(fingerprint, (secrets.get(fingerprint) ?? 0) + 1);

    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const remaining = (secrets.get(fingerprint) ?? 1) - 1;
      if (remaining > 0) secrets.set(fingerprint, remaining);
      else secrets.delete(fingerprint);
      if (secrets.size === 0 && this.#secretsInFlight.get(key) === secrets) this.#secretsInFlight.delete(key);
    };
    return { concurrentSecrets, end };
  }

  /**
   * Throws TooManyLoginFailuresError when either counter is at its limit. The
   * username's stored failures count together with `concurrentSecrets`.
   */
  async check(username: string, address: string, concurrentSecrets = 0): Promise<void> {
    const userKey = this.userKey(username);
    const rows: Array<{ key: string; failures: number; retry_after: number }> = await this.db('login_failures')
      .whereIn('key', [userKey, this.addressKey(address)])
      .andWhere('window_start', '>', this.db.raw(`now() - make_interval(secs => ?)`, [this.limits.windowSeconds]))
      .select('key', 'failures', this.db.raw(`ceil(extract(epoch from window_start + make_interval(secs => ?) - now()))::int as retry_after`, [this.limits.windowSeconds]));
    const userFailures = rows.find((row) => row.key === userKey);
    if (!userFailures && concurrentSecrets >= this.limits.maxFailuresPerUser) {
      // Guesses in flight hit the limit before any failure was stored, so no window exists yet to wait for.
      throw new TooManyLoginFailuresError(1);
    }
    for (const row of rows) {
      const isUser = row.key === userKey;
      const failures = isUser ? row.failures + concurrentSecrets : row.failures;
      const limit = isUser ? this.limits.maxFailuresPerUser : this.limits.maxFailuresPerAddress;
      if (failures >= limit) throw new TooManyLoginFailuresError(Math.max(1, row.retry_after));
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
