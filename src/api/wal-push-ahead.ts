import { basename, dirname, resolve } from 'node:path';
import { consumePushed, flagsSignature } from '../wal/wal-spool.js';

/** How many later `.ready` segments one wal-push stores ahead of PostgreSQL's calls, and how many at once. */
export const PUSH_AHEAD = { count: 8, parallel: 4 } as const;

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
 * wal-push's fast path, before any configuration is loaded: true when an earlier wal-push already
 * stored this segment (same content, same settings flags). Loads node built-ins only.
 */
export async function alreadyPushedAhead(path: string, signature: string, cwd = process.cwd()): Promise<boolean> {
  const full = resolve(cwd, path);
  const name = basename(full);
  if (!/^[0-9A-F]{24}$/.test(name) || basename(dirname(full)) !== 'pg_wal') return false;
  return consumePushed(dirname(full), name, full, signature);
}
