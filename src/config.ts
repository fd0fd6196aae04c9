import path from 'node:path';
import { z } from 'zod';
import { patternProblem } from './auth/patterns.js';

/** Settings read from the environment once at start; see README.md for each variable. */
export interface Config {
  host: string;
  port: number;
  /** External base URL used in Location headers, without a trailing slash; null means "from the request's Host". */
  publicUrl: string | null;
  /** Addresses or CIDR ranges whose X-Forwarded-* headers are trusted; empty means none. */
  trustedProxies: string[];
  dataDir: string;
  /** null means "start the embedded PostgreSQL under dataDir". */
  databaseUrl: string | null;
  embeddedPostgresPort: number;
  storage: FilesystemStorageConfig | S3StorageConfig;
  uploads: {
    /** Idle upload sessions older than this are purged, in seconds. */
    sessionTtlSeconds: number;
    /** How often the purge runs, in seconds. */
    purgeIntervalSeconds: number;
  };
  auth: AuthConfig;
  logLevel: string;
}

export interface AuthConfig {
  /** `iss` of the tokens this gateway signs. */
  issuer: string;
  /** `aud` of the tokens and the `service` of the challenge. */
  service: string;
  /** PEM files of the signing keys; the first signs, all verify. Empty means a key generated and kept in the database. */
  signingKeyFiles: string[];
  /** Lifetime of access tokens, in seconds. */
  tokenLifetimeSeconds: number;
  /** Clock skew tolerated when checking exp and nbf, in seconds. */
  clockSkewSeconds: number;
  /** Repository patterns anyone may pull from without credentials; empty means none. */
  anonymousPullPatterns: string[];
  /** Password of the `admin` user created on first start; null means a generated one. */
  adminPassword: string | null;
  /** Failed logins allowed per username, and per client address, within the window. */
  maxFailuresPerUser: number;
  maxFailuresPerAddress: number;
  loginFailureWindowSeconds: number;
}

export interface FilesystemStorageConfig {
  driver: 'filesystem';
  rootDir: string;
}

export interface S3StorageConfig {
  driver: 's3';
  endpoint: string | undefined;
  region: string;
  bucket: string;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  forcePathStyle: boolean;
}

/** Thrown when an environment variable is missing or invalid; the message names each bad variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const booleanText = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'expected true or false' })
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const portText = z.coerce
  .number({ error: 'expected a port number' })
  .int('expected a whole number')
  .min(0, 'expected a port from 0 to 65535')
  .max(65535, 'expected a port from 0 to 65535');

const secondsText = z.coerce.number({ error: 'expected a number of seconds' }).int('expected whole seconds').positive('expected a positive number of seconds');

const httpUrl = z
  .string()
  .url('expected an absolute URL such as https://registry.example.com')
  .refine((value) => /^https?:\/\//.test(value), 'expected an http:// or https:// URL');

const environmentSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: portText.default(5000),
  PUBLIC_URL: httpUrl.optional(),
  TRUSTED_PROXIES: z.string().optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .refine((value) => /^postgres(ql)?:\/\//.test(value), 'expected a postgres:// or postgresql:// URL')
    .optional(),
  EMBEDDED_PG_PORT: portText.default(54329),
  STORAGE_DRIVER: z.enum(['filesystem', 's3'], { error: 'expected filesystem or s3' }).optional(),
  S3_ENDPOINT: httpUrl.optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens')
    .optional(),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: booleanText.optional(),
  UPLOAD_SESSION_TTL: secondsText.default(24 * 3600),
  UPLOAD_PURGE_INTERVAL: secondsText.default(3600),
  TOKEN_ISSUER: z.string().min(1).default('portcullis'),
  TOKEN_SERVICE: z.string().min(1).default('portcullis'),
  TOKEN_SIGNING_KEY_FILES: z.string().optional(),
  TOKEN_LIFETIME: z.coerce.number({ error: 'expected a number of seconds' }).int('expected whole seconds').min(60, 'expected at least 60 seconds').default(300),
  TOKEN_CLOCK_SKEW: z.coerce.number({ error: 'expected a number of seconds' }).int('expected whole seconds').min(0, 'expected 0 or more seconds').max(600, 'expected at most 600 seconds').default(30),
  ANONYMOUS_PULL: z.string().optional(),
  PORTCULLIS_ADMIN_PASSWORD: z.string().min(12, 'expected at least 12 characters').optional(),
  LOGIN_MAX_FAILURES_PER_USER: z.coerce.number({ error: 'expected a whole number' }).int('expected a whole number').positive('expected a positive number').default(10),
  LOGIN_MAX_FAILURES_PER_ADDRESS: z.coerce.number({ error: 'expected a whole number' }).int('expected a whole number').positive('expected a positive number').default(50),
  LOGIN_FAILURE_WINDOW: secondsText.default(300),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'expected fatal, error, warn, info, debug, trace or silent' }).default('info'),
});

function splitList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
}

/**
 * Builds the configuration from environment variables. Every invalid value is
 * reported at once, each with its variable name and the expected form.
 * Empty strings count as unset.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = environmentSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const values = parsed.data;
  const problems: string[] = [];

  const s3Requested = values.STORAGE_DRIVER === 's3' || (values.STORAGE_DRIVER === undefined && values.S3_BUCKET !== undefined);
  if (s3Requested && values.S3_BUCKET === undefined) {
    problems.push('S3_BUCKET: required when STORAGE_DRIVER is s3');
  }
  if (s3Requested && (values.S3_ACCESS_KEY_ID === undefined) !== (values.S3_SECRET_ACCESS_KEY === undefined)) {
    problems.push('S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY: set both or neither (neither uses the AWS default credential chain)');
  }
  const anonymousPullPatterns = splitList(values.ANONYMOUS_PULL);
  for (const pattern of anonymousPullPatterns) {
    const problem = patternProblem(pattern);
    if (problem !== undefined) problems.push(`ANONYMOUS_PULL: invalid pattern "${pattern}": ${problem}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const dataDir = path.resolve(values.DATA_DIR);
  const storage: Config['storage'] = s3Requested
    ? {
        driver: 's3',
        endpoint: values.S3_ENDPOINT,
        region: values.S3_REGION,
        bucket: values.S3_BUCKET as string,
        accessKeyId: values.S3_ACCESS_KEY_ID,
        secretAccessKey: values.S3_SECRET_ACCESS_KEY,
        forcePathStyle: values.S3_FORCE_PATH_STYLE ?? values.S3_ENDPOINT !== undefined,
      }
    : { driver: 'filesystem', rootDir: path.join(dataDir, 'storage') };

  return {
    host: values.HOST,
    port: values.PORT,
    publicUrl: values.PUBLIC_URL ? values.PUBLIC_URL.replace(/\/+$/, '') : null,
    trustedProxies: splitList(values.TRUSTED_PROXIES),
    dataDir,
    databaseUrl: values.DATABASE_URL ?? null,
    embeddedPostgresPort: values.EMBEDDED_PG_PORT,
    storage,
    uploads: { sessionTtlSeconds: values.UPLOAD_SESSION_TTL, purgeIntervalSeconds: values.UPLOAD_PURGE_INTERVAL },
    auth: {
      issuer: values.TOKEN_ISSUER,
      service: values.TOKEN_SERVICE,
      signingKeyFiles: splitList(values.TOKEN_SIGNING_KEY_FILES),
      tokenLifetimeSeconds: values.TOKEN_LIFETIME,
      clockSkewSeconds: values.TOKEN_CLOCK_SKEW,
      anonymousPullPatterns,
      adminPassword: values.PORTCULLIS_ADMIN_PASSWORD ?? null,
      maxFailuresPerUser: values.LOGIN_MAX_FAILURES_PER_USER,
      maxFailuresPerAddress: values.LOGIN_MAX_FAILURES_PER_ADDRESS,
      loginFailureWindowSeconds: values.LOGIN_FAILURE_WINDOW,
    },
    logLevel: values.LOG_LEVEL,
  };
}
