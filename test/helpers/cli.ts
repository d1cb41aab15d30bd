import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pgUrl, services, tempDir } from './services.js';

export const REPO_ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const PGBAK_BIN = join(REPO_ROOT, 'bin', 'pgbak');

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Run through another program (e.g. runuser) */
  prefix?: readonly string[];
}

/** Start the built CLI (bin/pgbak) as a real process. */
export function spawnCli(args: readonly string[], options: CliOptions = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const [cmd, ...pre] = options.prefix ?? [];
  const child = spawn(cmd ?? process.execPath, [...pre, ...(cmd ? [process.execPath] : []), PGBAK_BIN, ...args], {
    cwd: options.cwd ?? tempDir(),
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return spawnCli(args, options).done;
}

/**
 * A clean environment for one CLI run against the test services: only what is given here
 * (plus PATH, HOME and GNUPGHOME), so the developer's own variables never leak in.
 */
export function backupEnv(opts: {
  database: string;
  dir: string;
  bucket?: string;
  encrypt?: boolean;
  extra?: Record<string, string>;
}): NodeJS.ProcessEnv {
  const s = services();
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GNUPGHOME: s.gpg.home,
    DATABASE_URL: pgUrl(opts.database),
    BACKUP_DIR: join(opts.dir, 'backups'),
    LOG_FILE: join(opts.dir, 'logs', 'backup-db.log'),
    ...(opts.bucket
      ? {
          STORAGE_ENDPOINT: s.s3.endpoint,
          STORAGE_ACCESS_KEY: s.s3.accessKey,
          STORAGE_SECRET_KEY: s.s3.secretKey,
          STORAGE_BUCKET: opts.bucket,
        }
      : {}),
    ...(opts.encrypt ? { GPG_RECIPIENT: s.gpg.email } : {}),
    ...opts.extra,
  };
}
