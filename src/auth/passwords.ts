import { randomBytes, scrypt, timingSafeEqual, type BinaryLike, type ScryptOptions } from 'node:crypto';

/** Cost parameters of scrypt (RFC 7914): CPU and memory cost N, block size r, parallelization p. */
export interface ScryptParameters {
  N: number;
  r: number;
  p: number;
}

/**
 * Parameters of new hashes. Each hash needs 128 * N * r bytes of memory, 32 MiB
 * here. One hash took 0.17 s of CPU time with Node 20 in a single run on a
 * shared x86-64 virtual machine, so expect that order of magnitude per login.
 */
export const DEFAULT_SCRYPT_PARAMETERS: Readonly<ScryptParameters> = Object.freeze({ N: 2 ** 15, r: 8, p: 1 });

const SALT_BYTES = 16;
const HASH_BYTES = 32;
const SECRET_BYTES = 32;

/**
 * Bounds on the parameters of a stored hash. They stop a corrupted or planted
 * row from making one verification take more than 128 MiB of memory
 * (128 * N * r bytes) or more than 16 times the CPU time of the defaults.
 */
const MAX_MEMORY_BYTES = 128 * 1024 * 1024;
const MAX_P = 4;
const MIN_HASH_BYTES = 16;
const MAX_HASH_BYTES = 64;

/** A stored password hash that is not in the `scrypt$N$r$p$salt$hash` form or has parameters out of bounds. */
export class PasswordHashFormatError extends Error {
  constructor(reason: string) {
    super(`invalid stored password hash: ${reason}`);
    this.name = 'PasswordHashFormatError';
  }
}

interface ParsedHash extends ScryptParameters {
  salt: Buffer;
  hash: Buffer;
}

/**
 * Hashes a password with scrypt and a random 16-byte salt. The result is
 * `scrypt$N$r$p$salt$hash` with salt and hash in base64url, so it records
 * everything verification needs. Throws on an empty password.
 */
export async function hashPassword(plain: string, parameters: ScryptParameters = DEFAULT_SCRYPT_PARAMETERS): Promise<string> {
  if (plain.length === 0) throw new Error('cannot hash an empty password');
  const problem = parameterProblem(parameters);
  if (problem !== undefined) throw new RangeError(`invalid scrypt parameters: ${problem}`);

  const salt = randomBytes(SALT_BYTES);
  const hash = await deriveKey(plain, salt, HASH_BYTES, parameters);
  return ['scrypt', parameters.N, parameters.r, parameters.p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

/**
 * Returns whether a password matches a hash made by hashPassword. The hashes
 * are compared in constant time. Throws PasswordHashFormatError when the
 * stored hash is malformed, because that is a data fault and not a wrong
 * password.
 */
export async function verifyPassword(plain: string, encoded: string): Promise<boolean> {
  const stored = parseHash(encoded);
  const computed = await deriveKey(plain, stored.salt, stored.hash.length, stored);
  return timingSafeEqual(computed, stored.hash);
}

/**
 * Returns whether a hash was made with weaker parameters than the current
 * defaults, so that a successful login can store a new hash of the password.
 */
export function needsRehash(encoded: string): boolean {
  const stored = parseHash(encoded);
  return stored.N < DEFAULT_SCRYPT_PARAMETERS.N || stored.r < DEFAULT_SCRYPT_PARAMETERS.r || stored.p < DEFAULT_SCRYPT_PARAMETERS.p || stored.hash.length < HASH_BYTES;
}

/**
 * Runs a verification that always fails, with the default parameters. A login
 * for an unknown user calls it so that it takes as long as one with a wrong
 * password, and response times do not reveal which users exist.
 */
export async function verifyPasswordOfUnknownUser(plain: string): Promise<false> {
  await deriveKey(plain, randomBytes(SALT_BYTES), HASH_BYTES, DEFAULT_SCRYPT_PARAMETERS);
  return false;
}

/** Generates a robot secret: 32 random bytes in base64url, 43 characters. */
export function generateSecret(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}

function parseHash(encoded: string): ParsedHash {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') throw new PasswordHashFormatError('expected scrypt$N$r$p$salt$hash');

  const [, nText, rText, pText, saltText, hashText] = parts as [string, string, string, string, string, string];
  const parameters = { N: parseInteger(nText), r: parseInteger(rText), p: parseInteger(pText) };
  const problem = parameterProblem(parameters);
  if (problem !== undefined) throw new PasswordHashFormatError(problem);

  const salt = decodeBase64Url(saltText);
  const hash = decodeBase64Url(hashText);
  if (salt.length === 0) throw new PasswordHashFormatError('the salt is empty');
  if (hash.length < MIN_HASH_BYTES || hash.length > MAX_HASH_BYTES) {
    throw new PasswordHashFormatError(`the hash must be ${MIN_HASH_BYTES} to ${MAX_HASH_BYTES} bytes long`);
  }
  return { ...parameters, salt, hash };
}

function parameterProblem({ N, r, p }: ScryptParameters): string | undefined {
  // scrypt needs N to be a power of two greater than 1.
  const isPowerOfTwo = Number.isInteger(N) && N > 1 && (N & (N - 1)) === 0;
  if (!isPowerOfTwo) return 'N must be a power of two greater than 1';
  if (!Number.isInteger(r) || r < 1) return 'r must be a positive integer';
  if (!Number.isInteger(p) || p < 1 || p > MAX_P) return `p must be an integer from 1 to ${MAX_P}`;
  if (128 * N * r > MAX_MEMORY_BYTES) return `128 * N * r must be at most ${MAX_MEMORY_BYTES} bytes`;
  return undefined;
}

function parseInteger(text: string): number {
  if (!/^[0-9]{1,10}$/.test(text)) return Number.NaN;
  return Number(text);
}

function decodeBase64Url(text: string): Buffer {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new PasswordHashFormatError('salt and hash must be base64url');
  return Buffer.from(text, 'base64url');
}

function deriveKey(plain: BinaryLike, salt: Buffer, length: number, { N, r, p }: ScryptParameters): Promise<Buffer> {
  // Node's default maxmem of 32 MiB rejects N = 2^15 with r = 8, which needs 32 MiB plus a little more.
  const options: ScryptOptions = { N, r, p, maxmem: 2 * 128 * N * r };
  return new Promise((resolve, reject) => {
    scrypt(plain, salt, length, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}
