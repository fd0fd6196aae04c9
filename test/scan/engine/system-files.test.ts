import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { scanLayer } from '../../../src/scan/engine/index.js';

/** Bytes of /usr/share taken beyond the directories that are always included; SYSTEM_FILES_MIB overrides it. */
const EXTRA_BYTES = Number(process.env.SYSTEM_FILES_MIB ?? 48) * 1024 * 1024;
const ALWAYS = ['/etc/ssl/certs', '/usr/share/ca-certificates', '/usr/share/doc'];
const MAX_FILE_BYTES = 8 * 1024 * 1024;

/** Lists regular files under a directory, depth first in name order, without following symlinks. */
async function* walk(dir: string): AsyncGenerator<string> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const full = path.join(dir, name);
    const stat = await lstat(full).catch(() => null);
    if (stat?.isDirectory()) yield* walk(full);
    else if (stat?.isFile() && stat.size <= MAX_FILE_BYTES) yield full;
  }
}

/** Packs this machine's certificate and documentation directories, then more of /usr/share up to EXTRA_BYTES, into a gzip layer stream. */
function systemLayer(): { stream: Readable; files: () => number } {
  const pack = tar.pack();
  let count = 0;
  void (async () => {
    const seen = new Set<string>();
    const add = async (file: string): Promise<number> => {
      if (seen.has(file)) return 0;
      seen.add(file);
      const content = await readFile(file).catch(() => null);
      if (content === null) return 0;
      await new Promise<void>((resolve, reject) => pack.entry({ name: file.slice(1), size: content.length }, content, (e) => (e ? reject(e) : resolve())));
      count++;
      return content.length;
    };
    for (const dir of ALWAYS) for await (const file of walk(dir)) await add(file);
    let extra = 0;
    for await (const file of walk('/usr/share')) {
      if (extra >= EXTRA_BYTES) break;
      extra += await add(file);
    }
    pack.finalize();
  })().catch((error: unknown) => pack.destroy(error as Error));
  return { stream: Readable.from(pack).pipe(createGzip({ level: 1 })), files: () => count };
}

describe('clean system files', () => {
  it('yield no findings', { skip: existsSync('/usr/share/doc') ? false : '/usr/share/doc is missing', timeout: 240_000 }, async () => {
    const layer = systemLayer();
    const result = await scanLayer(layer.stream, 'application/vnd.oci.image.layer.v1.tar+gzip', 'sha256:system');
    assert.equal(result.unscannable, undefined);
    assert.ok(layer.files() > 100, `only ${layer.files()} files were packed`);
    assert.deepEqual(result.findings.map((f) => `${f.detector} ${f.path}:${f.line}`), []);
  });
});
