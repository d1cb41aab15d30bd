import type { BackupResult } from '../model/backup-result.js';
import { AppError, ExitCode, errnoCode } from '../errors/index.js';
import { isNetworkErrorCode, NETWORK_ERRORS } from '../errors/network-errors.js';

/**
 * Error codes of causes that may go away by themselves, so a run that failed with one is worth
 * retrying a little later:
 *
 * | code | raised for |
 * |---|---|
 * | `db-connection-refused` | PostgreSQL not listening (restarting, failing over) |
 * | `db-timeout` | connect timeout, ETIMEDOUT, ECONNRESET |
 * | `db-starting` | 57P03: the server is starting up or shutting down |
 * | `db-connection-lost` | the connection dropped during the dump (57P01 admin shutdown, EOF) |
 * | `db-too-many-connections` | 53300: too many clients already |
 * | `storage-endpoint` | S3 endpoint unreachable (refused, reset, DNS failure, timeout) |
 * | `storage-server-error` | S3 answered 5xx, 429 or SlowDown |
 * | `storage-timeout` | an S3 request or upload timed out |
 *
 * Never retried whatever their cause: configuration and usage errors, a missing pg_dump, a missing
 * or unusable GPG key, permission denied, integrity failures, a lock held by another run, and an
 * interrupted run (exit codes 2, 4, 6, 8, 9, 11, 130); also authentication failures and a missing
 * database or bucket, which have their own codes. Anything else is not retried either: only a
 * known transient cause is.
 */
export const TRANSIENT_ERROR_CODES: ReadonlySet<string> = new Set([
  'db-connection-refused',
  'db-timeout',
  'db-starting',
  'db-connection-lost',
  'db-too-many-connections',
  'storage-endpoint',
  'storage-server-error',
  'storage-timeout',
]);

/** Exit codes whose failures a retry cannot fix. */
const PERMANENT_EXIT_CODES: ReadonlySet<number> = new Set([
  ExitCode.usage,
  ExitCode.pgDumpMissing,
  ExitCode.permission,
  ExitCode.encryption,
  ExitCode.integrity,
  ExitCode.locked,
  ExitCode.interrupted,
]);

/** Socket-level error codes of errors that reach here unwrapped: the transient ones of NETWORK_ERRORS. */
function transientErrno(code: string | undefined): boolean {
  return isNetworkErrorCode(code) && NETWORK_ERRORS[code].transient;
}

/**
 * True when a failed run (a thrown error, or a BackupResult with status failed/partial) failed for
 * a transient cause listed in TRANSIENT_ERROR_CODES. An AppError with a generic code (`storage`,
 * `partial`, `db-error` …) is looked through to its `cause` chain, where an S3 5xx/429 or a socket
 * error also counts as transient. A successful result is never "transient".
 */
export function isTransientFailure(failure: unknown): boolean {
  if (isBackupResult(failure)) {
    const error = failure.error;
    if (failure.status === 'ok' || failure.status === 'dry-run' || !error) return false;
    if (PERMANENT_EXIT_CODES.has(error.exitCode)) return false;
    // A partial run carries the upload's failure as its cause.
    return TRANSIENT_ERROR_CODES.has(error.code) || (error.causeCode !== undefined && TRANSIENT_ERROR_CODES.has(error.causeCode));
  }
  return transientError(failure, 0);
}

function transientError(err: unknown, depth: number): boolean {
  if (typeof err !== 'object' || err === null || depth > 5) return false;
  if (err instanceof AppError) {
    if (PERMANENT_EXIT_CODES.has(err.exitCode)) return false;
    if (TRANSIENT_ERROR_CODES.has(err.code)) return true;
    return transientError(err.cause, depth + 1);
  }
  const code = errnoCode(err);
  if (transientErrno(code)) return true;
  const status = (err as { $metadata?: { httpStatusCode?: unknown } }).$metadata?.httpStatusCode;
  // 501 Not Implemented is a missing feature (versitygw's lifecycle rules), not a failing server.
  if (typeof status === 'number' && ((status >= 500 && status !== 501) || status === 429)) return true;
  const name = (err as { name?: unknown }).name;
  if (name === 'TimeoutError' || name === 'SlowDown') return true;
  return transientError((err as { cause?: unknown }).cause, depth + 1);
}

function isBackupResult(value: unknown): value is BackupResult {
  return typeof value === 'object' && value !== null && 'status' in value && 'job' in value && 'startedAt' in value;
}
