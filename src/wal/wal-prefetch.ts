import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The wal-fetch prefetch: `pg_wal/pgbak_prefetch/<flags signature>/<segment>`, segments a
 * wal-fetch call fetched, decoded and checked (sha256) ahead of PostgreSQL's requests for them.
 * PostgreSQL's call for one of them renames it to %p and exits 0 without loading the configuration
 * or reaching the bucket. This module loads only node built-ins: the fast path runs before the CLI.
 */
export function prefetchDir(pgdata: string, signature: string): string {
  return join(pgdata, 'pg_wal', 'pgbak_prefetch', signature);
}

/** Move a prefetched file to `dest`; false when there is none. */
export async function takePrefetched(dir: string, name: string, dest: string): Promise<boolean> {
  try {
    await rename(join(dir, name), dest);
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
