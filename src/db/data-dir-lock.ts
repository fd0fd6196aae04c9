import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';

/** A held lock on the data directory. */
export interface DataDirLock {
  release(): Promise<void>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM means the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `<dataDir>/gateway.pid`, so that a second gateway on the same data
 * directory stops at start instead of taking over the first one's embedded
 * PostgreSQL. A lock file left by a process that no longer runs is taken over.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const lockPath = path.join(dataDir, 'gateway.pid');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return { release: () => rm(lockPath, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      throw new Error(`DATA_DIR ${dataDir} is in use by another gateway (process ${owner}): stop it, or give this one another DATA_DIR and EMBEDDED_PG_PORT`);
    }
    await rm(lockPath, { force: true });
  }
  throw new Error(`cannot take the lock file ${lockPath}: another process keeps creating it`);
}
