import { userInfo } from 'node:os';
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LockedError, errnoCode, fsError } from '../errors/index.js';
import { processAlive } from '../model/process-alive.js';

export interface LockInfo {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
}

export interface HeldLock {
  readonly path: string;
  release(): void;
}

/** The release of every lock this process holds, for an exit that cannot wait for its owner. */
const held = new Set<() => void>();

/**
 * Release every lock this process still holds. Only for a process about to exit while a run is
 * still going (a command past its stop grace, a daemon giving up on a run): the lock would
 * otherwise hold this pid, which the next run takes over only once the process is gone.
 */
export function releaseHeldLocks(): void {
  for (const release of [...held]) release();
}

/**
 * One run at a time per database: an exclusive lock file `.pgbak-<prefix>.lock` in BACKUP_DIR
 * holding the owner's pid and host. A lock whose process is gone (a killed run) is stale and is
 * taken over; a live one fails at once with LockedError naming the pid.
 */
export function acquireLock(dir: string, prefix: string, what: string): HeldLock {
  const path = join(dir, `.pgbak-${prefix}.lock`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fsError(
      err,
      'create directory',
      dir,
      `set BACKUP_DIR to a directory that ${userInfo().username} (the user running pgbak) can write`,
    );
  }
  const me: LockInfo = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw fsError(err, 'create lock file', path);
      let holder: LockInfo | undefined;
      try {
        holder = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
      } catch {
        holder = undefined; // unreadable or half-written: treat as stale below
      }
      if (holder && (holder.host !== me.host || processAlive(holder.pid)) && holder.pid !== process.pid) {
        throw new LockedError(
          `another ${what} is running (pid ${holder.pid}${holder.host !== me.host ? ` on ${holder.host}` : ''}, since ${holder.startedAt})`,
          {
            hint: `wait for it to finish; if no such process exists, remove ${path}`,
          },
        );
      }
      rmSync(path, { force: true });
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(me));
    } catch (err) {
      // A 100 % full disk creates the file but cannot write it: leave no empty lock behind (the
      // next run would take it over anyway) and report the disk, not an internal error.
      closeSync(fd);
      rmSync(path, { force: true });
      throw fsError(err, 'write lock file', path);
    }
    closeSync(fd);
    let released = false;
    const lock: HeldLock = {
      path,
      release() {
        if (released) return;
        released = true;
        held.delete(lock.release);
        try {
          const current = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
          if (current.pid === me.pid && current.host === me.host) rmSync(path, { force: true });
        } catch {
          /* already gone */
        }
      },
    };
    held.add(lock.release);
    return lock;
  }
  throw new LockedError(`could not take the lock ${path}`, { hint: 'another run may be starting at the same moment; try again' });
}
