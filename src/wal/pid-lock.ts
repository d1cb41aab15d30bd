import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { processAlive } from '../model/process-alive.js';

/**
 * The one-worker lock of the WAL workers (push-ahead in pg_wal/pgbak_spool/, prefetch in
 * pg_wal/pgbak_prefetch/<signature>/): a create-only file `{"pid":…,"signature":…}`. A lock whose
 * process is gone is taken over; a half-written or unreadable one counts as held (a worker is
 * starting). Loads node built-ins only: the sh clients and bin/pgbak's fast paths read it too.
 */
export interface PidLock {
  readonly pid: number;
  readonly signature?: string | undefined;
}

/** The live holder of `lock`, if any. */
export async function lockHolder(lock: string): Promise<PidLock | undefined> {
  try {
    const w = JSON.parse(await readFile(lock, 'utf8')) as { pid?: unknown; signature?: unknown };
    if (typeof w.pid !== 'number' || !processAlive(w.pid)) return undefined;
    return { pid: w.pid, signature: typeof w.signature === 'string' ? w.signature : undefined };
  } catch {
    return undefined;
  }
}

/** Take `lock` for this process; false when a live process (or one writing it now) holds it. */
export async function claimLock(lock: string, signature: string): Promise<boolean> {
  await mkdir(dirname(lock), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lock, JSON.stringify({ pid: process.pid, signature }) + '\n', { flag: 'wx', mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let pid: unknown;
      try {
        pid = (JSON.parse(await readFile(lock, 'utf8')) as { pid?: unknown }).pid;
      } catch {
        // Half written by a worker starting now, or garbage: held unless it stays so.
      }
      if (typeof pid !== 'number' || processAlive(pid)) return false;
      await rm(lock, { force: true });
    }
  }
  return false;
}

/** Give `lock` back, when this process holds it. */
export async function releaseLock(lock: string): Promise<void> {
  try {
    const w = JSON.parse(await readFile(lock, 'utf8')) as { pid?: unknown };
    if (w.pid === process.pid) await rm(lock, { force: true });
  } catch {
    // Gone already.
  }
}
