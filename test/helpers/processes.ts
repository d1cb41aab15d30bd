import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { execFileAsync } from './services.js';

/**
 * Helpers of the fault tests that watch a running pgbak: wait for a condition, find its children
 * in /proc, see its temp files, and a table big enough that a dump takes seconds.
 */

/**
 * Poll `probe` every 50 ms until it gives something other than undefined (or false), and return
 * that; after `timeoutMs` throw "timed out waiting" (plus " for <what>" when `what` is given).
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  what?: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(what === undefined ? 'timed out waiting' : `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * SQL creating the table `events` of `rows` rows of random-looking text (three md5s, ~100 bytes
 * a row): compression and upload of its dump take seconds, long enough to interrupt. `withTime`
 * adds a timestamptz column `at`.
 */
export function bigTableSql(rows: number, opts: { withTime?: boolean } = {}): string {
  const at = opts.withTime ? `, now() - g * interval '1 second' AS at` : '';
  return `CREATE TABLE events AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) AS payload${at}
  FROM generate_series(1, ${rows}) g;`;
}

/** The command line of a running process (NUL-separated arguments); '' once it is gone. */
export function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return ''; // already gone
  }
}

/**
 * Whether a process is a tool doing real work on a database: its command line has --dbname=
 * (pgbak also runs short `pg_dump --version` probes). Debian's /usr/bin/pg_dump is a wrapper
 * that execs the real binary: the cmdline is read after that.
 */
export function connectsToDatabase(pid: number): boolean {
  return cmdlineOf(pid).includes('--dbname=');
}

/** Direct children of `parent` as [pid, comm]. */
export async function children(parent: number): Promise<[number, string][]> {
  const { stdout } = await execFileAsync('ps', ['-o', 'pid=,comm=', '--ppid', String(parent)]).catch(() => ({ stdout: '' }));
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 2)
    .map((f) => [Number(f[0]), f[1]!]);
}

/** pids of the children of `parent` named `name` that connect to a database (see connectsToDatabase). */
export async function connectingChildren(parent: number, name: string): Promise<number[]> {
  return (await children(parent))
    .filter(([, comm]) => comm === name)
    .map(([pid]) => pid)
    .filter(connectsToDatabase);
}

/** The pg_dump of `parent` doing the dump (not a --version probe); undefined while there is none. */
export async function dumpingPgDump(parent: number): Promise<number | undefined> {
  return (await connectingChildren(parent, 'pg_dump'))[0];
}

/** Temp files (`.tmp-` in the name) in directory `dir`; [] when it does not exist. */
export function tempFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.includes('.tmp-')) : [];
}
