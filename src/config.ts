import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { patternProblem } from './auth/patterns.js';
import { isValidMediaType } from './registry/media-types.js';
import { DEFAULT_ATTACHMENT_MAX_BYTES, DEFAULT_ATTACHMENT_MEDIA_TYPES, isFilesystemLayerType } from './policy/attachments.js';
import { blocklistEntryProblem, DEFAULT_BLOCKED_REGISTRIES } from './upstream/blocklist.js';

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
  attachments: AttachmentConfig;
  /** Registry hosts (`quay.io`) and wildcards (`*.gcr.io`) whose names are denied on /v2 with an import hint. */
  blockedRegistries: string[];
  audit: AuditConfig;
  /** How long a secret scan's claim lasts without renewal, in seconds; a scan whose process died is taken over after it. */
  scanLeaseSeconds: number;
  logLevel: string;
}

export interface AuditConfig {
  /** Name of this gateway process on its audit events. */
  replica: string;
  /** Serve pulls whose audit event cannot be written, keeping the event for a later write; every other request still fails closed. */
  failOpenPulls: boolean;
  /** Maximum wait for the audit chain's lock before a request fails with 503, in milliseconds. */
  lockTimeoutMs: number;
}

/** Rules for the manifests that may be pulled as attachments (signatures, SBOMs, attestations) of a pullable subject. */
export interface AttachmentConfig {
  /** Media types allowed as an attachment's artifactType, config and layers, lowercased. */
  mediaTypes: string[];
  /** Largest total size of an attachment's manifest, config and layers, in bytes. */
  maxBytes: number;
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
  TRUSTED_PROXIES: z
    .string()
    .refine((value) => splitList(value).every(isAddressOrRange), 'expected comma-separated IP addresses or CIDR ranges, such as 10.0.0.1,192.168.0.0/16')
    .optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .refine((value) => /^postgres(ql)?:\/\//.test(value) && URL.canParse(value), 'expected a valid postgres:// or postgresql:// URL')
    .optional(),
  EMBEDDED_PG_PORT: portText.default(54329),
  REPLICA_ID: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'expected 1-128 letters, digits, dots, colons, underscores or hyphens').optional(),
  AUDIT_FAIL_OPEN_PULLS: booleanText.optional(),
  SCAN_LEASE_SECONDS: secondsText.pipe(z.number().min(2, 'expected at least 2 seconds').max(3600, 'expected at most 3600 seconds')).default(120),
  AUDIT_LOCK_TIMEOUT: z.coerce.number({ error: 'expected a number of milliseconds' }).int('expected whole milliseconds').min(100, 'expected at least 100 milliseconds').max(600_000, 'expected at most 600000 milliseconds (10 minutes)').default(5000),
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
  UPLOAD_SESSION_TTL: secondsText.pipe(z.number().max(30 * 86400, 'expected at most 2592000 seconds (30 days)')).default(24 * 3600),
  // Node timers hold at most 2^31-1 ms (about 24.8 days); a longer interval would fire every millisecond.
  UPLOAD_PURGE_INTERVAL: secondsText.pipe(z.number().max(7 * 86400, 'expected at most 604800 seconds (7 days)')).default(3600),
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
  ATTACHMENT_MEDIA_TYPES: z.string().optional(),
  ATTACHMENT_MAX_BYTES: z.coerce.number({ error: 'expected a number of bytes' }).int('expected a whole number of bytes').positive('expected a positive number of bytes').default(DEFAULT_ATTACHMENT_MAX_BYTES),
  BLOCKED_REGISTRIES: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'expected fatal, error, warn, info, debug, trace or silent' }).default('info'),
});

function isAddressOrRange(entry: string): boolean {
  const [address, prefix, ...rest] = entry.split('/');
  if (rest.length > 0 || address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

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
  const attachmentMediaTypes = values.ATTACHMENT_MEDIA_TYPES === undefined ? [...DEFAULT_ATTACHMENT_MEDIA_TYPES] : splitList(values.ATTACHMENT_MEDIA_TYPES).map((type) => type.toLowerCase());
  for (const type of attachmentMediaTypes) {
    if (!isValidMediaType(type) || type.includes(';')) problems.push(`ATTACHMENT_MEDIA_TYPES: "${type}" is not a media type: expected type/subtype without parameters, such as application/spdx+json`);
    else if (isFilesystemLayerType(type)) problems.push(`ATTACHMENT_MEDIA_TYPES: "${type}" is an image filesystem layer type, which is never allowed in an attachment`);
  }
  const blockedRegistries = values.BLOCKED_REGISTRIES === undefined ? [...DEFAULT_BLOCKED_REGISTRIES] : splitList(values.BLOCKED_REGISTRIES).map((entry) => entry.toLowerCase());
  for (const entry of blockedRegistries) {
    const problem = blocklistEntryProblem(entry);
    if (problem !== undefined) problems.push(`BLOCKED_REGISTRIES: invalid entry "${entry}": ${problem}`);
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
    attachments: { mediaTypes: attachmentMediaTypes, maxBytes: values.ATTACHMENT_MAX_BYTES },
    blockedRegistries,
    audit: { replica: values.REPLICA_ID ?? os.hostname(), failOpenPulls: values.AUDIT_FAIL_OPEN_PULLS ?? false, lockTimeoutMs: values.AUDIT_LOCK_TIMEOUT },
    scanLeaseSeconds: values.SCAN_LEASE_SECONDS,
    logLevel: values.LOG_LEVEL,
  };
}
