import type { BackupResult } from '../model/backup-result.js';
import type { JobConfig } from '../config/job.js';
import { AppError, ExitCode } from '../errors/index.js';
import { messageOf } from '../errors/error-message.js';
import type { Logger } from '../logging/logger.js';
import type { Semaphore } from './semaphore.js';

/** What {@link runWithRetries} needs from the scheduler that runs it. */
export interface RetryContext {
  readonly job: JobConfig;
  readonly log: Logger;
  /** Backup slots (BACKUP_CONCURRENCY); each attempt holds one. */
  readonly slots: Semaphore;
  /** Aborted on the daemon's first stop request: cancels the wait for a slot and retry waits. */
  readonly stopping: AbortSignal;
  /** The controllers of the attempts in progress, for the daemon to abort. */
  readonly running: Set<AbortController>;
  readonly retries: number;
  readonly retryBaseMs: number;
  readonly isTransient: (failure: unknown) => boolean;
  readonly now: () => Date;
  /** A timer the daemon clears when it stops. */
  readonly later: (ms: number, fn: () => void) => void;
  readonly runJob: (job: JobConfig, signal: AbortSignal) => Promise<BackupResult>;
  readonly retryUpload?: ((job: JobConfig, partial: BackupResult, signal: AbortSignal) => Promise<BackupResult>) | undefined;
}

/** The final result of a run, after its retries. */
export interface RunOutcome {
  readonly result: BackupResult;
  readonly attempts: number;
}

/**
 * One run of a job with its retries: each attempt waits for a slot; a failed or partial attempt
 * that failed for a transient cause is retried after 30 s, 2 min, 8 min … (retryBaseMs × 4ⁿ), a
 * partial one by uploading its backup (retryUpload) rather than dumping again. Resolves undefined
 * when the daemon stopped before the run got a slot.
 */
export async function runWithRetries(ctx: RetryContext, trigger: 'schedule' | 'start'): Promise<RunOutcome | undefined> {
  /** The partial result whose upload the next attempt retries. */
  let partial: BackupResult | undefined;
  for (let attempt = 1; ; attempt++) {
    const release = await ctx.slots.acquire(ctx.stopping);
    if (!release) {
      ctx.log.info('run cancelled: the daemon is stopping', { trigger });
      return undefined;
    }
    let outcome: { result: BackupResult; failure: unknown };
    try {
      outcome = await attemptRun(ctx, trigger, attempt, partial);
    } finally {
      release();
    }
    const { result, failure } = outcome;
    const failed = result.status === 'failed' || result.status === 'partial';
    const retry = failed && attempt <= ctx.retries && !ctx.stopping.aborted && safe(() => ctx.isTransient(failure), false);
    if (!retry) return { result, attempts: attempt };
    partial = result.status === 'partial' && result.name && ctx.retryUpload ? result : undefined;
    const delay = ctx.retryBaseMs * 4 ** (attempt - 1);
    ctx.log.warn(
      partial
        ? 'upload failed for a transient cause; retrying the upload of the local backup'
        : 'run failed for a transient cause; retrying',
      {
        attempt,
        retries: ctx.retries,
        retryInMs: delay,
        code: result.error?.code,
        error: result.error?.message,
      },
    );
    if (!(await sleep(delay, ctx.stopping, ctx.later))) return { result, attempts: attempt };
  }
}

/** One attempt: a run (or the upload retry of a partial one) that never throws. */
async function attemptRun(ctx: RetryContext, trigger: string, attempt: number, partial: BackupResult | undefined) {
  const controller = new AbortController();
  ctx.running.add(controller);
  const startedAt = ctx.now();
  ctx.log.info(partial ? 'upload retry started' : 'backup started', { trigger, attempt, ...(partial ? { backup: partial.name } : {}) });
  try {
    const result =
      partial && ctx.retryUpload
        ? await ctx.retryUpload(ctx.job, partial, controller.signal)
        : await ctx.runJob(ctx.job, controller.signal);
    return { result, failure: result as unknown };
  } catch (err) {
    return { result: failedResult(ctx.job, err, startedAt, ctx.now()), failure: err };
  } finally {
    ctx.running.delete(controller);
  }
}

/** A failed BackupResult for a runJob that threw. */
function failedResult(job: JobConfig, err: unknown, startedAt: Date, finishedAt: Date): BackupResult {
  const error =
    err instanceof AppError
      ? { code: err.code, message: err.message, hint: err.hint, exitCode: err.exitCode }
      : { code: 'internal', message: messageOf(err), exitCode: ExitCode.failure };
  return {
    status: 'failed',
    job: job.name,
    database: job.database,
    name: undefined,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
    sizeBytes: undefined,
    sha256: undefined,
    encrypted: false,
    locations: [],
    error,
    warnings: [],
  };
}

/** `fn()`, or `fallback` (after `onError`) when it throws. */
export function safe<T>(fn: () => T, fallback: T, onError?: (err: unknown) => void): T {
  try {
    return fn();
  } catch (err) {
    onError?.(err);
    return fallback;
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal, later: (ms: number, fn: () => void) => void): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    later(ms, () => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    });
  });
}
