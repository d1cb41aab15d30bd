import type { Dirent } from 'node:fs';
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode, fsError } from '../errors/index.js';
import { processAlive } from '../model/process-alive.js';

/**
 * A temp file that LocalBackend.put left behind because its process died before it could
 * remove it (SIGKILL, the OOM killer, a power loss): `.<name>.tmp-<pid>-<12 hex>`.
 */
export interface StaleTemp {
  readonly path: string;
  readonly size: number;
  /** The process that wrote it (from its name). */
  readonly pid: number;
  readonly modified: Date;
}

/**
 * How long a temp file must have been left unmodified before it may be removed, however dead
 * its writer looks. On one host the pid check alone is exact (a live writer is never touched;
 * a reused pid only keeps a dead writer's file a while longer). The floor is for what a pid
 * check cannot see: a writer in another pid namespace or on another host sharing BACKUP_DIR
 * (a container, NFS). A writer that is making progress modifies its file continually, so a
 * minute without a write is already a stalled or dead one; stalled longer, it loses its temp
 * file and fails cleanly at its rename (nothing is left under a final name).
 */
export const STALE_TEMP_MIN_AGE_MS = 60_000;

const TEMP_RE = /^\..+\.tmp-(\d+)-[0-9a-f]{12}$/;

/** The writer's pid of a put temp file name, or undefined for any other name. */
function tempFileOwner(name: string): number | undefined {
  const m = TEMP_RE.exec(name);
  const pid = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

export interface StaleTempOptions {
  readonly now?: Date | undefined;
  readonly minAgeMs?: number | undefined;
  /** Find them, remove nothing. */
  readonly dryRun?: boolean | undefined;
}

/**
 * Remove the temp files under `root` (BACKUP_DIR, any depth) whose writer is gone from this
 * host and that were not modified for `minAgeMs`; returns what it removed (or would remove).
 * This process's own temp files are never candidates. A file that vanished meanwhile is
 * skipped; a directory that cannot be read or a file that cannot be removed throws an AppError.
 */
export async function removeStaleTemps(root: string, options: StaleTempOptions = {}): Promise<StaleTemp[]> {
  const now = (options.now ?? new Date()).getTime();
  const minAge = options.minAgeMs ?? STALE_TEMP_MIN_AGE_MS;
  const out: StaleTemp[] = [];
  for await (const { path, name } of files(root)) {
    const pid = tempFileOwner(name);
    if (pid === undefined || pid === process.pid || processAlive(pid)) continue;
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue;
      throw fsError(err, 'read', path);
    }
    if (!info.isFile() || now - info.mtime.getTime() < minAge) continue;
    if (!options.dryRun) {
      try {
        await unlink(path);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        throw fsError(err, 'delete', path);
      }
    }
    out.push({ path, size: info.size, pid, modified: info.mtime });
  }
  return out;
}

async function* files(dir: string): AsyncIterable<{ path: string; name: string }> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    throw fsError(err, 'list', dir);
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield { path, name: entry.name };
  }
}
