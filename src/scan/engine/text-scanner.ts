import { createHash, type Hash } from 'node:crypto';
import { detectTokens, type DetectorId } from './detectors.js';
import { detectFormatLine, linePrefilter, type FileKind } from './file-kinds.js';
import type { FindingCollector } from './redaction.js';

/** Lines longer than this are scanned in pieces of this size, so one line never takes more memory. */
export const MAX_LINE_CHARS = 64 * 1024;
/** Characters kept from the end of a cut piece and scanned again with the next, so a secret across the cut is still seen. */
const CUT_OVERLAP = 1024;
/** Base64 characters a PEM body needs to count as a key; the smallest real keys (EC P-256) have about 160. */
const MIN_KEY_BODY_CHARS = 100;

const PEM_BEGIN = /-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----/;
const BASE64_LINE = /^[A-Za-z0-9+/]+={0,2}$/;
// A PGP armor checksum line: '=' and 4 base64 characters.
const PGP_CHECKSUM = /^=[A-Za-z0-9+/]{4}$/;
const PEM_HEADER = /^(?:Proc-Type|DEK-Info|Version|Comment|Hash|Charset|MessageID):/;
// base64 of 'openssh-key-v1\0', the magic that starts every OpenSSH private key body.
const OPENSSH_MAGIC = 'b3BlbnNzaC1rZXktdjEA';

const PEM_DETECTORS: Record<string, DetectorId> = {
  'RSA PRIVATE KEY': 'private-key-rsa',
  'EC PRIVATE KEY': 'private-key-ec',
  'DSA PRIVATE KEY': 'private-key-dsa',
  'PRIVATE KEY': 'private-key-pkcs8',
  'ENCRYPTED PRIVATE KEY': 'private-key-encrypted',
  'OPENSSH PRIVATE KEY': 'private-key-openssh',
  'PGP PRIVATE KEY BLOCK': 'private-key-pgp',
};

/** A PEM block being read line by line; its body is hashed as it goes, never kept. */
interface PemBlock {
  label: string;
  line: number;
  bodyChars: number;
  bodyStart: string;
  encrypted: boolean;
  hash: Hash;
}

/**
 * Scans one text file (or config field) as a stream of chunks, line by line with bounded line
 * length. Only lines that pass the keyword prefilter of the file's kind are examined, and
 * credential formats (dotenv, .npmrc, …) have every line examined.
 */
export class TextScanner {
  private carry = '';
  private lineNo = 1;
  private pem: PemBlock | null = null;
  /** Keywords a line needs to be examined, or null when every line is. */
  private readonly prefilter: RegExp | null;

  constructor(
    private readonly collector: FindingCollector,
    private readonly path: string,
    private readonly kind: FileKind,
  ) {
    this.prefilter = linePrefilter(kind);
  }

  write(chunk: Buffer): void {
    this.writeText(chunk.toString('latin1'));
  }

  /** Scans text whose characters are bytes (latin1), as the layer scanner passes it. */
  writeText(chunkText: string): void {
    const text = this.carry.length > 0 ? this.carry + chunkText : chunkText;
    const lastNewline = text.lastIndexOf('\n');
    if (lastNewline < 0) {
      this.carry = text;
      this.cutLongLine();
      return;
    }

    this.carry = text.slice(lastNewline + 1);
    this.scanLines(text, lastNewline + 1);
    this.cutLongLine();
  }

  end(): void {
    if (this.carry.length > 0) this.scanLines(this.carry + '\n', this.carry.length + 1);
    this.carry = '';
    this.pem = null;
  }

  /**
   * Scans pieces of an over-long line until at most MAX_LINE_CHARS of it are kept, without advancing
   * the line number. One chunk can be longer than a piece (a zstd block decodes to up to 128 KiB), so
   * a single cut per chunk would let the kept tail grow with every chunk.
   */
  private cutLongLine(): void {
    while (this.carry.length > MAX_LINE_CHARS) {
      const piece = this.carry.slice(0, MAX_LINE_CHARS);
      this.carry = this.carry.slice(MAX_LINE_CHARS - CUT_OVERLAP);
      this.scanLine(piece);
    }
  }

  /** Scans the complete lines in text[0, end), where text[end - 1] is a newline. */
  private scanLines(text: string, end: number): void {
    let pos = 0;
    while (pos < end) {
      if (this.pem !== null || this.prefilter === null) {
        const newline = text.indexOf('\n', pos);
        this.scanLine(text.slice(pos, newline));
        this.lineNo++;
        pos = newline + 1;
        continue;
      }

      this.prefilter.lastIndex = pos;
      const match = this.prefilter.exec(text);
      if (match === null || match.index >= end) {
        this.lineNo += countNewlines(text, pos, end);
        return;
      }
      const lineStart = text.lastIndexOf('\n', match.index) + 1;
      const newline = text.indexOf('\n', match.index);
      this.lineNo += countNewlines(text, pos, lineStart);
      this.scanLine(text.slice(lineStart, newline));
      this.lineNo++;
      pos = newline + 1;
    }
  }

  private scanLine(rawLine: string): void {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (this.pem !== null) {
      this.continuePem(line.trim());
      return;
    }

    const begin = line.includes('-----BEGIN ') ? PEM_BEGIN.exec(line) : null;
    if (begin !== null) this.beginPem(begin[1]!, line.slice(begin.index + begin[0].length));

    const emit = (detector: DetectorId, secret: string): void => this.collector.add(detector, this.path, this.lineNo, secret);
    if (this.kind === 'generic') detectTokens(line, emit);
    else detectFormatLine(this.kind, line, emit);
  }

  private beginPem(label: string, rest: string): void {
    this.pem = { label, line: this.lineNo, bodyChars: 0, bodyStart: '', encrypted: false, hash: createHash('sha256') };

    // A key flattened into one line: with literal '\n' escapes as in JSON, or with spaces.
    const escaped = rest.includes('\\n');
    if (!escaped && !rest.includes('-----END ')) return;
    const pieces = escaped ? rest.split('\\n') : [rest.slice(0, rest.indexOf('-----END ')).replace(/\s+/g, ''), rest.slice(rest.indexOf('-----END '))];
    for (const piece of pieces) {
      if (this.pem === null) break;
      this.continuePem(piece.trim());
    }
    this.pem = null;
  }

  private continuePem(line: string): void {
    const pem = this.pem!;
    if (line.startsWith('-----END ')) {
      this.pem = null;
      this.finishPem(pem);
      return;
    }
    if (line === '' || PEM_HEADER.test(line) || PGP_CHECKSUM.test(line)) {
      if (line.startsWith('Proc-Type:') && line.includes('ENCRYPTED')) pem.encrypted = true;
      return;
    }
    if (!BASE64_LINE.test(line)) {
      // Not a key body: documentation that shows only the armor, or an elided body ('...').
      this.pem = null;
      return;
    }
    if (pem.bodyStart.length < 64) pem.bodyStart += line.slice(0, 64 - pem.bodyStart.length);
    pem.bodyChars += line.length;
    pem.hash.update(line, 'latin1');
  }

  private finishPem(pem: PemBlock): void {
    if (pem.bodyChars < MIN_KEY_BODY_CHARS) return;
    let detector = PEM_DETECTORS[pem.label];
    if (detector === undefined) return;
    if (pem.label === 'OPENSSH PRIVATE KEY') {
      if (!pem.bodyStart.startsWith(OPENSSH_MAGIC)) return;
      if (opensshCipher(pem.bodyStart) !== 'none') detector = 'private-key-encrypted';
    }
    if (pem.encrypted) detector = 'private-key-encrypted';

    const sha256 = pem.hash.digest('hex');
    this.collector.add(detector, this.path, pem.line, { prefix: pem.bodyStart.slice(0, 4), sha256 });
  }
}

/** Reads the cipher name that follows the openssh-key-v1 magic, or '' when the body is too short to hold it. */
function opensshCipher(bodyStart: string): string {
  const bytes = Buffer.from(bodyStart.slice(0, 48), 'base64');
  const magicLength = 15;
  if (bytes.length < magicLength + 4) return '';
  const nameLength = bytes.readUInt32BE(magicLength);
  return bytes.subarray(magicLength + 4, magicLength + 4 + nameLength).toString('latin1');
}

function countNewlines(text: string, from: number, to: number): number {
  let count = 0;
  let i = text.indexOf('\n', from);
  while (i >= 0 && i < to) {
    count++;
    i = text.indexOf('\n', i + 1);
  }
  return count;
}
