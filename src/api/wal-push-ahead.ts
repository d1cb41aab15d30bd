import { basename, dirname, resolve } from 'node:path';
import { flagsSignature, waitPushed } from '../wal/wal-spool.js';

/**
 * The push-ahead worker (wal-push-worker.ts): `parallel` segments at once; it looks for new `.ready`
 * files every `scanMs`, ends after `idleMs` without any and after `lifeMs` in all (a later call
 * starts a new one, with the settings of that moment). PostgreSQL's call for a segment the worker
 * is on waits for it up to `waitMs`, then pushes it itself.
 */
export const PUSH_AHEAD = { parallel: 4, scanMs: 200, idleMs: 3000, lifeMs: 300_000, waitMs: 60_000 } as const;

/** The spool signature of a wal-push command's settings flags. */
export function pushAheadSignature(flags: {
  config?: string | undefined;
  job?: string | undefined;
  envFile?: string | undefined;
  set?: readonly string[] | undefined;
}): string {
  return flagsSignature([flags.config ?? '', flags.job ?? '', flags.envFile ? resolve(flags.envFile) : '', ...(flags.set ?? [])]);
}

/**
 * wal-push's fast path, before any configuration is loaded: true when the push-ahead worker stored
 * this segment (same content, same settings flags), already or while this call waits for it.
 * Loads node built-ins only.
 */
export async function alreadyPushedAhead(path: string, signature: string, cwd = process.cwd()): Promise<boolean> {
  const full = resolve(cwd, path);
  const name = basename(full);
  if (!/^[0-9A-F]{24}$/.test(name) || basename(dirname(full)) !== 'pg_wal') return false;
  return waitPushed(dirname(full), name, full, signature, PUSH_AHEAD.waitMs);
}
