import { createHash, type Hash } from 'node:crypto';
import type { FindingCollector } from './redaction.js';

// DER of the OID 1.2.840.113549.1.7 (PKCS#7 content types); a PFX's authSafe is pkcs7-data (…7.1) or pkcs7-signedData (…7.2).
const PKCS7_OID_PREFIX = Buffer.from('06092a864886f70d0107', 'hex');
// DER body of 1.2.840.113549.1.12.10.1 (PKCS#12 bag types); bag …1.1 is keyBag, …1.2 is pkcs8ShroudedKeyBag.
const BAG_OID_PREFIX = Buffer.from('2a864886f70d010c0a01', 'hex');

/** Reports whether a file starts like a DER PFX: SEQUENCE { INTEGER 3, SEQUENCE { OID pkcs7-data or signedData, … } }. */
export function looksLikePfx(head: Buffer): boolean {
  let offset = skipDerHeader(head, 0, 0x30);
  if (offset < 0) return false;
  if (head[offset] !== 0x02 || head[offset + 1] !== 0x01 || head[offset + 2] !== 0x03) return false;
  offset = skipDerHeader(head, offset + 3, 0x30);
  if (offset < 0) return false;
  const oid = head.subarray(offset, offset + PKCS7_OID_PREFIX.length + 1);
  return oid.subarray(0, PKCS7_OID_PREFIX.length).equals(PKCS7_OID_PREFIX) && (oid[PKCS7_OID_PREFIX.length] === 1 || oid[PKCS7_OID_PREFIX.length] === 2);
}

/** Returns the offset after a DER tag and length, or -1 when the tag differs or the length is malformed. */
function skipDerHeader(bytes: Buffer, offset: number, tag: number): number {
  if (bytes[offset] !== tag) return -1;
  const first = bytes[offset + 1];
  if (first === undefined) return -1;
  if (first < 0x80) return offset + 2;
  const lengthBytes = first & 0x7f;
  if (lengthBytes === 0 || lengthBytes > 4) return -1;
  return offset + 2 + lengthBytes;
}

/**
 * Reads a PKCS#12 file as it streams: hashes it and looks for a key bag OID. Key bags sit in
 * the unencrypted part of a PFX, because the key inside a shrouded bag is encrypted on its own.
 * A trust store contains only certificate bags. So a PFX without a visible key bag is reported
 * only when its name marks it as a key container.
 */
export class Pkcs12Reader {
  private readonly hash: Hash = createHash('sha256');
  private tail = Buffer.alloc(0);
  private keyBag = false;

  constructor(private readonly namedAsKeyStore: boolean, private readonly pfx: boolean) {}

  write(chunk: Buffer): void {
    this.hash.update(chunk);
    if (this.keyBag || !this.pfx) return;
    const window = this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : chunk;
    let at = window.indexOf(BAG_OID_PREFIX);
    while (at >= 0) {
      const bagType = window[at + BAG_OID_PREFIX.length];
      if (bagType === 1 || bagType === 2) {
        this.keyBag = true;
        return;
      }
      at = window.indexOf(BAG_OID_PREFIX, at + 1);
    }
    this.tail = Buffer.from(window.subarray(Math.max(0, window.length - BAG_OID_PREFIX.length)));
  }

  end(collector: FindingCollector, path: string): void {
    if (!this.keyBag && !(this.pfx && this.namedAsKeyStore)) return;
    collector.add('pkcs12', path, null, { prefix: '', sha256: this.hash.digest('hex') });
  }
}
