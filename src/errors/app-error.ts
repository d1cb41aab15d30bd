import { formatBytes } from '../model/human-units.js';
import { ExitCode } from './exit-codes.js';
import { freeSpaceOf } from './free-space.js';

export interface AppErrorOptions {
  hint?: string | undefined;
  cause?: unknown;
  exitCode?: number;
}

/**
 * Every failure pgbak expects ends up as an AppError: a one-line message that names the
 * cause, an optional hint that says what to do, and a stable exit code. Library code throws
 * these; only the CLI renders them.
 */
export class AppError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options.exitCode ?? ExitCode.failure;
    this.hint = options.hint;
  }
}

export class UsageError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('usage', message, { exitCode: ExitCode.usage, ...options });
  }
}

/** One error for every configuration problem found, so all are reported at once. */
export class ConfigError extends AppError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], options: AppErrorOptions = {}) {
    const message =
      problems.length === 1
        ? `invalid configuration: ${problems[0]}`
        : `invalid configuration (${problems.length} problems):\n  - ${problems.join('\n  - ')}`;
    super('config', message, { exitCode: ExitCode.usage, ...options });
    this.problems = problems;
  }
}

export class PgToolError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('pg-tool-missing', message, {
      exitCode: ExitCode.pgDumpMissing,
      hint: 'install the PostgreSQL client: apt install postgresql-client (or set PG_DUMP_PATH)',
      ...options,
    });
  }
}

export class DatabaseError extends AppError {
  constructor(code: string, message: string, options: AppErrorOptions = {}) {
    super(code, message, { exitCode: ExitCode.database, ...options });
  }
}

export class PermissionError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('permission', message, { exitCode: ExitCode.permission, ...options });
  }
}

export class StorageError extends AppError {
  constructor(code: string, message: string, options: AppErrorOptions = {}) {
    super(code, message, { exitCode: ExitCode.storage, ...options });
  }
}

/** A key that does not exist in a storage backend. */
export class NotFoundError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('not-found', message, { exitCode: ExitCode.notFound, ...options });
  }
}

/** A create-only put (`ifNoneMatch`) found the key already there: another writer has it. */
export class ConflictError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('conflict', message, { exitCode: ExitCode.storage, ...options });
  }
}

export class EncryptionError extends AppError {
  constructor(code: string, message: string, options: AppErrorOptions = {}) {
    super(code, message, { exitCode: ExitCode.encryption, ...options });
  }
}

export class IntegrityError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('integrity', message, { exitCode: ExitCode.integrity, ...options });
  }
}

export class LockedError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('locked', message, { exitCode: ExitCode.locked, ...options });
  }
}

/** A child process (pg_dump, gpg, pg_restore, zstd …) failed. */
export class ProcessError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('process-failed', message, { exitCode: ExitCode.dumpFailed, ...options });
  }
}

export class InterruptedError extends AppError {
  constructor(message = 'interrupted', options: AppErrorOptions = {}) {
    super('interrupted', message, {
      exitCode: ExitCode.interrupted,
      hint: 'stopped by a signal (SIGINT/SIGTERM); the backups already stored are untouched',
      ...options,
    });
  }
}

/** Why `signal` was aborted, as the error a run ends with: its reason when that is an AppError (the CLI's "interrupted by SIGINT"), else a plain interruption. */
export function abortCause(signal: AbortSignal): AppError {
  return signal.reason instanceof AppError ? signal.reason : new InterruptedError();
}

/**
 * The file system ran out of room (ENOSPC, EDQUOT, EFBIG). Exit code 6, as for a permission
 * problem: the environment is at fault, not pgbak, and the operator has to act on the disk.
 */
export class DiskFullError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('disk-full', message, { exitCode: ExitCode.permission, ...options });
  }
}

/** Everything worked locally but at least one copy failed: the run is only partly done. */
export class PartialError extends AppError {
  constructor(message: string, options: AppErrorOptions = {}) {
    super('partial', message, { exitCode: ExitCode.partial, ...options });
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** Node's fs errors carry a `code` such as EACCES; this reads it safely. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** errno codes that mean "no room on the file system for this write", as people say them. */
const DISK_FULL: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the file system',
};

export function isDiskFull(err: unknown): boolean {
  return Object.hasOwn(DISK_FULL, errnoCode(err) ?? '');
}

/**
 * A DiskFullError for a failed write of `path`: "no space left on device writing /bk/x.dump
 * (free: 1.2 MiB of 5.0 MiB)" with a hint. `written`: how much of the file got written before
 * the file system filled, when known. Build it before removing what the write left behind, so
 * the free space shown is the one the write met.
 */
export function diskFullError(err: unknown, path: string, detail: { written?: number | undefined } = {}): DiskFullError {
  const what = DISK_FULL[errnoCode(err) ?? ''] ?? DISK_FULL.ENOSPC!;
  const space = freeSpaceOf(path);
  const free = space ? ` (free: ${formatBytes(space.free)} of ${formatBytes(space.total)})` : '';
  const needed = detail.written ? `the file needed more than the ${formatBytes(detail.written)} written before the disk filled; ` : '';
  return new DiskFullError(`${what} writing ${path}${free}`, {
    hint: `${needed}free space on that file system, point BACKUP_DIR at a larger one, or keep fewer backups (lower RETENTION_DAYS or BACKUP_KEEP_MIN, then \`pgbak prune\`); nothing half-written was kept under a final name`,
    cause: err,
  });
}

/**
 * The DiskFullError (exit 6) naming `path` when `err` means a full disk: a file-system error
 * (ENOSPC, EDQUOT, EFBIG) or a child process that said so on stderr (pg_dump's, zstd's "No space
 * left on device"); undefined for any other failure.
 */
export function diskFullOf(err: unknown, path: string): DiskFullError | undefined {
  if (isDiskFull(err)) return diskFullError(err, path);
  const message = err instanceof Error ? err.message : String(err);
  if (!/No space left on device/i.test(message)) return undefined;
  return diskFullError(Object.assign(new Error(message), { code: 'ENOSPC' }), path);
}

/** Map a file-system error on `path` to an AppError that names it (a full disk: DiskFullError, exit 6). */
export function fsError(err: unknown, action: string, path: string, hint?: string): AppError {
  if (isAppError(err)) return err;
  const code = errnoCode(err);
  if (isDiskFull(err)) return diskFullError(err, path);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new PermissionError(`permission denied: cannot ${action} ${path}`, {
      hint: hint ?? `check the owner and mode of ${path} (the user running pgbak must be able to write there)`,
      cause: err,
    });
  }
  if (code === 'ENOTDIR') {
    // BACKUP_DIR=/etc/passwd/db: a part of the path is a file. Exit 6, as for a directory pgbak may not write.
    return new PermissionError(`cannot ${action} ${path}: a part of that path is a file, not a directory`, {
      hint: hint ?? `choose a path whose parents are directories (or remove the file in the way)`,
      cause: err,
    });
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new AppError('fs', `cannot ${action} ${path}: ${detail}`, { cause: err, hint });
}
