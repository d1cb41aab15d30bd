import { spawn } from 'node:child_process';
import { access, mkdir, open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  AHEAD_NAME,
  consumePushed,
  fileIdentity,
  flagsSignature,
  spoolDir,
  waitPushed,
  WORKER_LOG,
  workerRunning,
} from '../wal/wal-spool.js';

/**
 * The push-ahead worker (wal-push-worker.ts): `parallel` segments at once; it looks for new `.ready`
 * files every `scanMs`, ends after `idleMs` without any and after `lifeMs` in all (a later call
 * starts a new one, with the settings of that moment). PostgreSQL's call for a segment the worker
 * is on waits for it up to `waitMs`, then pushes it itself.
 */
export const PUSH_AHEAD = { parallel: 4, scanMs: 200, idleMs: 10_000, lifeMs: 300_000, waitMs: 60_000 } as const;

interface SettingsFlags {
  config?: string | undefined;
  job?: string | undefined;
  envFile?: string | undefined;
  set?: readonly string[] | undefined;
}

const flagList = (flags: SettingsFlags) => [
  flags.config ?? '',
  flags.job ?? '',
  flags.envFile ? resolve(flags.envFile) : '',
  ...(flags.set ?? []),
];

/** The spool signature of a command's settings flags (wal-fetch's prefetch directory). */
export function pushAheadSignature(flags: SettingsFlags): string {
  return flagsSignature(flagList(flags));
}

/**
 * wal-push's signature: the settings flags and the identity on disk (device, inode, size, times)
 * of the files they name, --config and --env-file. Editing either gives new calls another
 * signature: they neither take the records of a worker started with the old settings nor wait
 * for it, and that worker ends at its next look (runPushAheadWorker's `signatureNow`). A file
 * that cannot be read counts as ''. bin/pgbak-wal-push computes the same.
 */
export async function pushSettingsSignature(flags: SettingsFlags): Promise<string> {
  const identity = (p: string | undefined) => (p ? fileIdentity(resolve(p)).catch(() => '') : Promise.resolve(''));
  return flagsSignature([...flagList(flags), await identity(flags.config), await identity(flags.envFile)]);
}

/**
 * wal-push's fast path, before any configuration is loaded: true when the push-ahead worker stored
 * this segment (same content, same settings flags), already or while this call waits for it.
 * With `startWorker` (the worker's command line, `wal-push --ahead-worker --ahead-from … %p`) and
 * no worker running, this call starts one first (detached), which pushes from this segment on in
 * name order, and waits for its record: the archiver's first call of a backlog then costs one
 * node start with the S3 client instead of a synchronous push plus a second start. False when the
 * worker could not store it (or never ran): the caller pushes it itself and reports the error.
 * Loads node built-ins only.
 */
export async function alreadyPushedAhead(
  path: string,
  signature: string,
  cwd = process.cwd(),
  startWorker?: readonly string[],
): Promise<boolean> {
  const full = resolve(cwd, path);
  const name = basename(full);
  const walDir = dirname(full);
  if (!AHEAD_NAME.test(name) || basename(walDir) !== 'pg_wal') return false;
  // Recorded already (the worker may have ended since): no worker to start.
  if (await consumePushed(walDir, name, full, signature)) return true;
  let starting: (() => boolean) | undefined;
  // A backup history file waits for a running worker, but never starts one (the worker starts from a segment).
  if (
    startWorker &&
    name.length === 24 &&
    !(await exists(join(spoolDir(walDir), `${name}.failed`))) &&
    !(await workerRunning(walDir, signature))
  ) {
    starting = await startDetached(startWorker, cwd, walDir);
  }
  return waitPushed(walDir, name, full, signature, PUSH_AHEAD.waitMs, starting);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * Start the worker detached (its own session), its log appended to pg_wal/pgbak_spool/worker.log;
 * a function telling whether it still runs.
 */
async function startDetached(argv: readonly string[], cwd: string, walDir: string): Promise<() => boolean> {
  let running = true;
  let log: FileHandle | undefined;
  try {
    await mkdir(spoolDir(walDir), { recursive: true, mode: 0o700 });
    log = await open(join(spoolDir(walDir), WORKER_LOG), 'a', 0o600);
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', 'ignore', log.fd], cwd, env: process.env });
    child.on('error', () => (running = false));
    child.on('exit', () => (running = false));
    child.unref();
  } catch {
    running = false;
  } finally {
    await log?.close();
  }
  return () => running;
}
