import { existsSync } from 'node:fs';
import { link, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { claimLock, lockHolder } from './pid-lock.js';

/**
 * The wal-fetch prefetch: `pg_wal/pgbak_prefetch/<flags signature>/`, WAL fetched, decoded and
 * checked (sha256) ahead of PostgreSQL's requests, by a wal-fetch call or by the prefetch worker
 * (src/api/wal-prefetch-worker.ts). In it:
 *
 *   <name>            a checked file; PostgreSQL's call for it renames it to %p and exits 0
 *   <name>.kept       a second name (hard link) of a fetched segment, kept for the last few taken:
 *                     PostgreSQL reads the segment recovery ended in once more; that call links it
 *                     to %p, only while the data directory has
 *                     recovery.signal and no standby.signal (archive recovery writes no WAL, so no
 *                     file sharing its inode is written before restore_command is no longer called)
 *                     and `listed` is at most ABSENT_FRESH_SECONDS old (the worker drops a kept
 *                     copy whose name its listing no longer shows with that content, alone)
 *   <name>.pending    the worker is fetching it: the call waits for it
 *   <name>.want       the call asks the worker for a file it does not hold (yet, or any more): the
 *                     worker fetches it (.pending) when its listing has it, else removes the request
 *   <name>.absent     the worker's listing of the archive (at the file's mtime) has no such file
 *                     and none after it on its timeline: the call exits 1 while that is recent
 *   listed            the worker has listed the archive (it is touched at each listing)
 *   worker.lock       {"pid":…,"signature":…} of the running worker
 *
 * bin/pgbak-wal-fetch (POSIX sh) and bin/pgbak read this without loading the configuration or
 * reaching the bucket. This module loads only node built-ins: the fast path runs before the CLI.
 */
export function prefetchDir(pgdata: string, signature: string): string {
  return join(pgdata, 'pg_wal', 'pgbak_prefetch', signature);
}

/** How long an `.absent` marker answers for the archive: older ones make the call ask the bucket. */
export const ABSENT_FRESH_SECONDS = 10;

/** Move a prefetched file to `dest`; false when there is none. */
export async function takePrefetched(dir: string, name: string, dest: string): Promise<boolean> {
  try {
    await rename(join(dir, name), dest);
    return true;
  } catch {
    return false;
  }
}

/** The suffix of a prefetched segment's second name (see above). */
export const KEPT_SUFFIX = '.kept';

/**
 * PostgreSQL's repeated call for a segment it took: link the kept copy to `dest` when the rules
 * above allow it; false otherwise (the call then asks the worker or the bucket).
 */
export async function takeKept(dir: string, name: string, dest: string, pgdata: string): Promise<boolean> {
  try {
    if (!existsSync(join(pgdata, 'recovery.signal')) || existsSync(join(pgdata, 'standby.signal'))) return false;
    const age = Date.now() - (await stat(join(dir, 'listed'))).mtimeMs;
    if (age < -1000 || age > ABSENT_FRESH_SECONDS * 1000) return false;
    const tmp = `${dest}.pgbak-${process.pid}.kept`;
    await rm(tmp, { force: true });
    await link(join(dir, `${name}${KEPT_SUFFIX}`), tmp);
    await rename(tmp, dest);
    return true;
  } catch {
    return false;
  }
}

/** Remove prefetched files PostgreSQL will not ask for any more (names before `name` on its timeline, and temporaries). */
export async function dropPrefetchedBefore(dir: string, name: string): Promise<void> {
  let files: string[];
  try {
    files = await readdir(dir);
  } catch {
    return;
  }
  const timeline = name.slice(0, 8);
  await Promise.all(
    files
      .filter((f) => f.endsWith('.tmp') || (f.slice(0, 8) === timeline && f < name))
      .map((f) => rm(join(dir, f), { force: true }).catch(() => undefined)),
  );
}

const LOCK = 'worker.lock';

/** Is a prefetch worker running for `dir`? */
export async function prefetchWorkerRunning(dir: string): Promise<boolean> {
  return (await lockHolder(join(dir, LOCK))) !== undefined;
}

/** Become the one prefetch worker of `dir` (pid-lock.ts: a dead worker's lock is taken over). */
export function claimPrefetchWorker(dir: string, signature: string): Promise<boolean> {
  return claimLock(join(dir, LOCK), signature);
}

/** Mark `names` absent from the archive now (and drop older markers for other names). */
export async function markAbsent(dir: string, names: readonly string[]): Promise<void> {
  const keep = new Set(names.map((n) => `${n}.absent`));
  for (const f of await readdir(dir).catch(() => [] as string[]))
    if (f.endsWith('.absent') && !keep.has(f)) await rm(join(dir, f), { force: true });
  for (const n of names) {
    const tmp = join(dir, `.${n}.absent.${process.pid}`);
    await writeFile(tmp, '', { mode: 0o600 });
    await rename(tmp, join(dir, `${n}.absent`));
  }
  await writeFile(join(dir, 'listed'), `${new Date().toISOString()}\n`, { mode: 0o600 });
}
