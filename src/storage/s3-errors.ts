import type { S3Settings } from '../config/job.js';
import { redact } from '../logging/redact.js';
import { type AppError, errnoCode, InterruptedError, isAppError, isNetworkErrorCode, StorageError } from '../errors/index.js';
import { formatDuration } from '../model/human-units.js';
import { EndpointSilent } from './silent-endpoints.js';

/**
 * The one mapping from an S3 / network failure to an AppError (unreachable endpoint, timeout,
 * missing bucket, rejected credentials, server error), and the classifiers it uses.
 */

/** STORAGE_TIMEOUT's default, for settings that do not give one. */
export const DEFAULT_TIMEOUT_MS = 60_000;

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'Forbidden',
  'InvalidToken',
  'ExpiredToken',
]);

/** The S3 error name (NoSuchKey, AccessDenied …) of an S3Error (s3-client.ts), or its Error name. */
export function s3ErrorName(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { name?: unknown; Code?: unknown };
  if (typeof e.Code === 'string') return e.Code;
  return typeof e.name === 'string' ? e.name : undefined;
}

/** The HTTP status of a failed S3 request, when the server answered. */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const status = (err as { $metadata?: { httpStatusCode?: unknown } }).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

export function isNotFound(err: unknown): boolean {
  const name = s3ErrorName(err);
  return name === 'NotFound' || name === 'NoSuchKey' || name === 'NoSuchBucket' || httpStatusOf(err) === 404;
}

/** The error and its causes (`cause`, AggregateError's `errors`), nearest first. */
function errorChain(err: unknown, depth = 0): unknown[] {
  if (typeof err !== 'object' || err === null || depth > 4) return [];
  const out: unknown[] = [err];
  const e = err as { cause?: unknown; errors?: unknown };
  if (e.cause !== undefined) out.push(...errorChain(e.cause, depth + 1));
  if (Array.isArray(e.errors)) for (const inner of e.errors) out.push(...errorChain(inner, depth + 1));
  return out;
}

/** The reason a request's deadline aborts it with. */
export class DeadlineExceeded extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${formatDuration(timeoutMs)}`);
    this.name = 'DeadlineExceeded';
  }
}

/** A signal that aborts after `timeoutMs` with DeadlineExceeded; its timer never holds the process. */
export function deadlineSignal(timeoutMs: number): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(new DeadlineExceeded(timeoutMs)), timeoutMs).unref();
  return controller.signal;
}

/** Both signals in one (either may be absent). */
export function anySignal(a: AbortSignal | undefined, b: AbortSignal | undefined): AbortSignal | undefined {
  return a && b ? AbortSignal.any([a, b]) : (a ?? b);
}

/** An AbortMultipartUpload that failed, carrying the failure that made the upload abort. */
export class CleanupFailure extends Error {
  constructor(
    cause: unknown,
    readonly original: unknown,
  ) {
    super(`aborting the multipart upload failed: ${describe(cause)}`, { cause });
    this.name = 'CleanupFailure';
  }
}

/**
 * A request that got no answer in time: our deadline, or the client's socket idle timeout.
 * A connection that could not be set up at all is an unreachable endpoint instead.
 */
function isTimeout(err: unknown): boolean {
  return errorChain(err).some((e) => {
    if (e instanceof DeadlineExceeded) return true;
    const message = e instanceof Error ? e.message : '';
    return s3ErrorName(e) === 'TimeoutError' && !/establish a connection/i.test(message);
  });
}

function timeoutError(s: S3Settings, operation: string, cause: unknown): StorageError {
  const limit = formatDuration(s.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  return new StorageError(
    'storage-timeout',
    `S3 ${operation} timed out: ${redact(s.endpoint)} did not answer within ${limit} (STORAGE_TIMEOUT)`,
    { hint: timeoutHint(limit), cause },
  );
}

function timeoutHint(limit: string): string {
  return `the S3 server accepts connections but does not answer (stopped, overloaded, or a firewall drops the packets); check it, or raise STORAGE_TIMEOUT (now ${limit}) for a slow link`;
}

function isNetworkError(err: unknown): boolean {
  if (httpStatusOf(err) !== undefined && errnoCode(err) === undefined) return false;
  return errorChain(err).some((e) => {
    const code = errnoCode(e);
    const name = s3ErrorName(e);
    const message = e instanceof Error ? e.message : '';
    return isNetworkErrorCode(code) || name === 'TimeoutError' || /fetch failed|socket hang up/i.test(message);
  });
}

export function describe(err: unknown): string {
  for (const e of errorChain(err)) {
    if (e instanceof Error && e.message) return e.message;
    const code = errnoCode(e);
    if (code) return code;
  }
  return String(err);
}

export function bucketMissing(s: S3Settings, cause: unknown): StorageError {
  return new StorageError('storage-bucket', `S3 bucket "${s.bucket}" does not exist at ${redact(s.endpoint)}`, {
    hint: 'create it with `pgbak init` (or aws s3 mb)',
    cause,
  });
}

/**
 * The one mapping from an S3 / network failure to an AppError: unreachable endpoint, missing
 * bucket, rejected credentials, or a generic storage failure naming the operation. The secret
 * key never appears in a message.
 */
export function mapS3Error(err: unknown, s: S3Settings, operation: string): AppError {
  if (isAppError(err)) return err;
  const clean = (text: string) => redact(text).split(s.secretAccessKey).join('***');
  const endpoint = redact(s.endpoint);
  const name = s3ErrorName(err);
  const status = httpStatusOf(err);
  const silent = errorChain(err).find((e): e is EndpointSilent => e instanceof EndpointSilent);
  if (silent) {
    const limit = formatDuration(s.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const ago = formatDuration(Math.max(0, Date.now() - silent.since));
    return new StorageError(
      'storage-timeout',
      `S3 ${operation} not sent: ${endpoint} gave no answer in time ${ago} ago in this run (STORAGE_TIMEOUT ${limit}); it is not asked again before the next run`,
      { hint: timeoutHint(limit), cause: err },
    );
  }
  if (isTimeout(err)) return timeoutError(s, operation, err);
  if (name === 'AbortError') {
    // Stopped by a signal: its reason when that is ours (InterruptedError from the CLI).
    const reason = errorChain(err).find(isAppError);
    return reason ?? new InterruptedError(`S3 ${operation} interrupted`, { cause: err });
  }
  if (isNetworkError(err)) {
    return new StorageError('storage-endpoint', `S3 endpoint unreachable: ${endpoint} (${clean(describe(err))})`, {
      hint: 'check STORAGE_ENDPOINT and that MinIO/S3 is running',
      cause: err,
    });
  }
  if (name === 'NoSuchBucket') return bucketMissing(s, err);
  // 501 NotImplemented (versitygw answers it to bucket lifecycle rules): a feature the server
  // lacks, not a failing server, so never retried as a 5xx.
  if (name === 'NotImplemented' || status === 501) {
    return new StorageError('storage-unsupported', `S3 ${operation} is not supported by ${endpoint} (${name ?? 'HTTP 501'})`, {
      hint: 'this S3 server does not implement the request; use an S3 server that does, or do without it',
      cause: err,
    });
  }
  if (
    (status !== undefined && (status >= 500 || status === 429)) ||
    name === 'SlowDown' ||
    name === 'ServiceUnavailable' ||
    name === 'InternalError'
  ) {
    return new StorageError(
      'storage-server-error',
      `S3 ${operation} failed: ${endpoint} answered ${name ?? 'an error'}${status ? ` (HTTP ${status})` : ''}: ${clean(describe(err))}`,
      {
        hint: 'the S3 server is overloaded or failing; pgbak retries later (BACKUP_RETRIES)',
        cause: err,
      },
    );
  }
  if ((name !== undefined && CREDENTIAL_ERRORS.has(name)) || status === 403) {
    return new StorageError(
      'storage-credentials',
      `S3 ${operation} refused by ${endpoint}: access key "${clean(s.accessKeyId)}" not accepted for bucket "${s.bucket}" (${name && name !== 'Unknown' ? name : `HTTP ${status ?? '403'}`})`,
      { hint: 'check STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY', cause: err },
    );
  }
  const detail = clean(describe(err));
  return new StorageError(
    'storage',
    `S3 ${operation} failed: ${name && !detail.includes(name) ? `${name}: ` : ''}${detail}${status ? ` (HTTP ${status})` : ''}`,
    {
      cause: err,
    },
  );
}
