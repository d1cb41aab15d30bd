import { createHash } from 'node:crypto';
import { createReadStream, fstatSync, ftruncateSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { claimLock, lockHolder, releaseLock } from './pid-lock.js';
import { join } from 'node:path';

/**
 * The push-ahead spool: `pg_wal/pgbak_spool/<segment>.pushed`, one small file per segment (or
 * backup history file) that a
 * wal-push stored ahead of PostgreSQL's own call for it, holding the segment's sha256 and the
 * signature of the settings flags it was pushed with. PostgreSQL's later call finds it, checks the
 * file in pg_wal is unchanged (same inode, size and times; else the same sha256) and the flags are
 * the same, removes the record and exits
 * 0 at once: no configuration, no S3 client, no round trip. Under pg_wal, so base backups
 * (pg_basebackup leaves pg_wal's contents out) never carry it.
 * This module loads only node built-ins: the fast path runs before anything else.
 */
export function spoolDir(walDir: string): string {
  return join(walDir, 'pgbak_spool');
}

/** The signature of a command's settings flags (--config, --job, --env-file, --set …). */
export function flagsSignature(flags: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(flags)).digest('hex').slice(0, 32);
}

/**
 * A file's identity on disk: inode, size, modification and change times in nanoseconds. A `.ready`
 * segment is never written again; PostgreSQL recycles it by renaming and rewriting, which changes
 * the change time. Equal identity before and after the push means the pushed bytes are the file's.
 */
export async function fileIdentity(path: string): Promise<string> {
  const st = await stat(path, { bigint: true });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** Record `name` as pushed with this content (and, when given, the file's identity when it was read). */
export async function recordPushed(walDir: string, name: string, sha256: string, signature: string, identity?: string): Promise<void> {
  const dir = spoolDir(walDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify({ sha256, signature, ...(identity ? { identity } : {}) }) + '\n', { mode: 0o600 });
  await rename(tmp, join(dir, `${name}.pushed`));
}

/** Is `name` recorded as pushed with these flags (whatever its content)? */
export async function spooled(walDir: string, name: string, signature: string): Promise<boolean> {
  try {
    const r = JSON.parse(await readFile(join(spoolDir(walDir), `${name}.pushed`), 'utf8')) as { signature?: string };
    return r.signature === signature;
  } catch {
    return false;
  }
}

/**
 * The fast path of `wal-push`: true (and the record removed) when the file at `path` was pushed
 * ahead with these flags and still has the sha256 recorded then. Anything else (no record, other
 * flags, other content, an unreadable file) is false: the normal push decides.
 */
export async function consumePushed(walDir: string, name: string, path: string, signature: string): Promise<boolean> {
  const record = join(spoolDir(walDir), `${name}.pushed`);
  let r: { sha256?: string; signature?: string; identity?: string };
  try {
    r = JSON.parse(await readFile(record, 'utf8')) as { sha256?: string; signature?: string; identity?: string };
  } catch {
    return false;
  }
  if (r.signature !== signature || !r.sha256) return false;
  // The same file, untouched since it was read and pushed: no need to read its 16 MiB again.
  if (r.identity && r.identity === (await fileIdentity(path).catch(() => ''))) {
    await rm(record, { force: true });
    return true;
  }
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch {
    return false;
  }
  if (hash.digest('hex') !== r.sha256) return false;
  await rm(record, { force: true });
  return true;
}

/**
 * A push-ahead worker that gave up on a segment (the bucket unreachable, a conflict): PostgreSQL's
 * own call for it stops waiting and pushes it itself, which reports the error.
 */
export async function recordFailed(walDir: string, name: string, signature: string): Promise<void> {
  const dir = spoolDir(walDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, `${name}.failed`), JSON.stringify({ signature }) + '\n', { mode: 0o600 });
}

const WORKER_LOCK = 'worker.lock';
/** The push-ahead worker's log (its stderr, appended; cut when a worker starts and finds it over 1 MiB). */
export const WORKER_LOG = 'worker.log';
const WORKER_LOG_MAX = 1024 * 1024;

/** A worker that holds the lock: its log (stderr, when it is the spool's log file) cut when it grew too long. */
export function trimWorkerLog(): void {
  try {
    const st = fstatSync(2);
    if (st.isFile() && st.size > WORKER_LOG_MAX) ftruncateSync(2, 0);
  } catch {
    // Not a file, or not ours to cut.
  }
}

/** The running push-ahead worker with these flags, if any. */
export async function workerRunning(walDir: string, signature: string): Promise<boolean> {
  return (await lockHolder(join(spoolDir(walDir), WORKER_LOCK)))?.signature === signature;
}

/**
 * Become the one push-ahead worker of this pg_wal (pid-lock.ts: a lock whose process is gone is
 * taken over). False when another live worker holds it.
 */
export function claimWorker(walDir: string, signature: string): Promise<boolean> {
  return claimLock(join(spoolDir(walDir), WORKER_LOCK), signature);
}

export function releaseWorker(walDir: string): Promise<void> {
  return releaseLock(join(spoolDir(walDir), WORKER_LOCK));
}

/**
 * The fast path's wait: true once the segment at `path` is recorded as pushed (same flags, same
 * content), whether already or by a running worker within `timeoutMs`. False at once when no
 * worker with these flags runs, when the worker gave up on it, or at the timeout: then the call
 * pushes it itself.
 */
export async function waitPushed(
  walDir: string,
  name: string,
  path: string,
  signature: string,
  timeoutMs: number,
  /** A worker this call started: while it runs (still loading, before it holds the lock) keep waiting. */
  starting?: () => boolean,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await consumePushed(walDir, name, path, signature)) return true;
    const failed = join(spoolDir(walDir), `${name}.failed`);
    try {
      await readFile(failed);
      await rm(failed, { force: true });
      return false;
    } catch {
      // Not given up on.
    }
    if (Date.now() > deadline || !((await workerRunning(walDir, signature)) || starting?.())) {
      // The worker may have recorded it just before it ended.
      return consumePushed(walDir, name, path, signature);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A segment's name, or a backup history file's (`<segment>.<offset>.backup`): what the worker pushes ahead. */
export const AHEAD_NAME = /^[0-9A-F]{24}(?:\.[0-9A-F]{8}\.backup)?$/;

/**
 * Segment and backup history file names marked `.ready` in pg_wal/archive_status after `after`
 * (from it, with `inclusive`), in name order (none when unreadable). A backup history file sorts
 * after the segment it starts in.
 */
export async function readyAfter(walDir: string, after: string, inclusive = false): Promise<string[]> {
  try {
    return (await readdir(join(walDir, 'archive_status')))
      .filter((f) => f.endsWith('.ready') && AHEAD_NAME.test(f.slice(0, -6)))
      .map((f) => f.slice(0, -6))
      .filter((n) => n > after || (inclusive && n === after))
      .sort();
  } catch {
    return [];
  }
}

/**
 * Remove the records no call will ask for: `.pushed` and `.failed` files of segments that are no
 * longer `.ready` (PostgreSQL archived them another way, e.g. a call that stopped waiting and
 * pushed itself). Run by a worker once it holds the lock; never throws.
 */
export async function removeStaleRecords(walDir: string): Promise<number> {
  let removed = 0;
  try {
    const ready = new Set(await readyAfter(walDir, '', true));
    for (const f of await readdir(spoolDir(walDir))) {
      const m = /^([0-9A-F]{24}(?:\.[0-9A-F]{8}\.backup)?)\.(pushed|failed)$/.exec(f);
      if (m && !ready.has(m[1]!)) {
        await rm(join(spoolDir(walDir), f), { force: true });
        removed++;
      }
    }
  } catch {
    // Nothing to tidy.
  }
  return removed;
}
