import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

/** One tar entry for a test layer; `type` defaults to a regular file. */
export interface TestEntry {
  name: string;
  content?: string | Buffer;
  type?: 'file' | 'directory' | 'symlink';
}

/** Builds an uncompressed tar archive in memory. */
export async function buildTar(entries: TestEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    await new Promise<void>((resolve, reject) => {
      const callback = (error?: Error | null): void => (error ? reject(error) : resolve());
      if (type === 'file') pack.entry({ name: entry.name, type }, entry.content ?? '', callback);
      else pack.entry({ name: entry.name, type, linkname: type === 'symlink' ? 'target' : undefined }, callback);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export async function buildGzipTar(entries: TestEntry[]): Promise<Buffer> {
  return gzipSync(await buildTar(entries));
}

/** Streams a buffer in chunks of `chunkSize` bytes, so scanners see content split at arbitrary points. */
export function streamOf(bytes: Buffer, chunkSize = 7000): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < bytes.length; i += chunkSize) yield bytes.subarray(i, i + chunkSize);
    })(),
  );
}

/** Generates an RSA key in PKCS#1 PEM. */
export function rsaPkcs1Pem(): string {
  return generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs1' }) as string;
}

/** Generates an EC key in PKCS#8 PEM. */
export function ecPkcs8Pem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
}

/** Generates an EC key in SEC1 PEM. */
export function ecSec1Pem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'sec1' }) as string;
}

/** Generates an EC key in encrypted PKCS#8 PEM. */
export function encryptedPkcs8Pem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'pem',
    type: 'pkcs8',
    cipher: 'aes-256-cbc',
    passphrase: randomBytes(8).toString('hex'),
  }) as string;
}

/** Builds an OpenSSH private key block with the openssh-key-v1 structure, the given cipher name and random key material. */
export function opensshPem(cipher = 'none'): string {
  const name = Buffer.from(cipher);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(name.length);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), length, name, randomBytes(300)]).toString('base64');
  const lines = body.match(/.{1,70}/g)!.join('\n');
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** Builds a PGP private key block with a random body. */
export function pgpPrivateBlock(): string {
  const lines = randomBytes(400).toString('base64').match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN PGP PRIVATE KEY BLOCK-----\nComment: generated for a test\n\n${lines}\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----\n`;
}

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Random characters from `alphabet`, fresh on every call, so no fixture is a real credential. */
export function randomToken(length: number, alphabet = BASE62): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[bytes[i]! % alphabet.length];
  return out;
}

/** Generates a fake AWS access key id: 'AKIA' and 16 random base32 characters. */
export function fakeAwsKeyId(): string {
  return `AKIA${randomToken(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`;
}

/** Generates a fake AWS secret key: 40 random base64 characters with each character class present. */
export function fakeAwsSecret(): string {
  return `aZ9/${randomToken(36, BASE62 + '/+')}`;
}

/** Builds a fake JWT with a JSON header and payload and a random signature. */
export function fakeJwt(): string {
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ sub: randomToken(8), iat: 1700000000 })).toString('base64url');
  return `${header}.${payload}.${randomBytes(32).toString('base64url')}`;
}

/** DER TLV with a definite length. */
function der(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  let length = Buffer.from([0x82, body.length >> 8, body.length & 0xff]);
  if (body.length < 0x100) length = Buffer.from([0x81, body.length]);
  if (body.length < 0x80) length = Buffer.from([body.length]);
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

/** A PFX skeleton: version 3 and a pkcs7-data authSafe holding one SafeBag of the given bag type OID. */
function pfx(bagTypeLastByte: number): Buffer {
  const bagOid = der(0x06, Buffer.from([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, bagTypeLastByte]));
  const bag = der(0x30, bagOid, der(0xa0, der(0x04, randomBytes(200))), Buffer.from([0x05, 0x00]));
  const data = der(0x04, der(0x30, bag));
  const contentInfo = der(0x30, der(0x06, Buffer.from('2a864886f70d010701', 'hex')), der(0xa0, data));
  return der(0x30, der(0x02, Buffer.from([3])), contentInfo);
}

/** Builds a PKCS#12 structure with a pkcs8ShroudedKeyBag, as a key store has. */
export function pkcs12WithKeyBag(): Buffer {
  return pfx(2);
}

/** Builds a PKCS#12 structure with only a certBag, as a trust store has. */
export function pkcs12WithoutKeyBag(): Buffer {
  return pfx(3);
}
