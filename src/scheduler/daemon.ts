import type { BackupResult } from '../model/backup-result.js';
import type { JobConfig } from '../config/job.js';
import { AppError, ConfigError, ExitCode } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { type Schedule, formatInTimeZone, parseSchedule } from '../config/schedule.js';
import { isTransientFailure } from './transient-failure.js';

export { isTransientFailure, TRANSIENT_ERROR_CODES } from './transient-failure.js';

export interface DaemonOptions {
  /** Each runs on `settings.BACKUP_SCHEDULE` in `settings.BACKUP_TZ`; once at start when BACKUP_RUN_ON_START. */
  readonly jobs: readonly JobConfig[];
  /** One backup of one job. Must stop and clean up when `signal` aborts; may throw or return a failed result. */
  readonly runJob: (job: JobConfig, signal: AbortSignal) => Promise<BackupResult>;
  /**
   * The retry of a partial run (its backup is complete locally, its upload failed for a
   * transient cause): upload that backup rather than dump the database again. Without it, a
   * partial run is retried with runJob.
   */
  readonly retryUpload?: (job: JobConfig, partial: BackupResult, signal: AbortSignal) => Promise<BackupResult>;
  readonly logger: Logger;
  /** The clock (default `new Date()`); it must advance with the timers, as vitest's fake timers do. */
  readonly now?: () => Date;
  /** Called once per run with its final result (after retries); not for skipped runs. */
  readonly onRunFinished?: (job: JobConfig, result: BackupResult) => void;
  /** After a stop request, how long running backups may finish before they are aborted (BACKUP_STOP_TIMEOUT). */
  readonly stopTimeoutMs: number;
  /** Backups running at once across all jobs (BACKUP_CONCURRENCY, at least 1). */
  readonly concurrency: number;
  /** Retries of a run that failed for a transient cause (BACKUP_RETRIES). */
  readonly retries: number;
  /** Which failures are retried (default isTransientFailure). Gets the thrown error or the failed result. */
  readonly isTransient?: (failure: unknown) => boolean;
  /** First retry delay; each next one is 4 times longer: 30 s, 2 min, 8 min … (default 30 s). */
  readonly retryBaseMs?: number;
  /** After aborting, how long to wait for runs to clean up before giving up on them (default 60 s). */
  readonly abortGraceMs?: number;
  /** Aborting it is a stop request, like daemon.stop(). */
  readonly signal?: AbortSignal;
}

/** How the daemon stopped. */
export interface DaemonStopped {
  /** Jobs whose run was still going when the daemon gave up on it (abort grace passed, or a third stop). */
  readonly abandoned: readonly string[];
}

/** A running scheduler. */
export interface Daemon {
  /** Resolves once stopped: no timer left and every run finished (or given up after the abort grace). */
  readonly done: Promise<DaemonStopped>;
  /**
   * Stop request. The first stops scheduling, cancels queued runs and retry waits, and lets running
   * backups finish for up to stopTimeoutMs, then aborts them. The second aborts running backups at
   * once (their cleanup still runs). A third stops waiting for them.
   */
  stop(reason?: string): void;
  /** Jobs with a run in progress (running, queued for a slot, or waiting to retry). */
  busyJobs(): string[];
}

interface JobState {
  readonly job: JobConfig;
  readonly schedule: Schedule;
  readonly log: Logger;
  timer: NodeJS.Timeout | undefined;
  /** The slot that fired last: the next slot is computed after it, so no slot can fire twice. */
  lastSlot: Date | undefined;
  next: Date | undefined;
  busy: boolean;
}

/** setTimeout's limit (about 24.8 days): longer waits are made of several timers. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Start the scheduler and resolve when it stopped. Stop it with `options.signal`. */
export function runDaemon(options: DaemonOptions): Promise<DaemonStopped> {
  return startDaemon(options).done;
}

/**
 * Start the scheduler: each job on its cron schedule, never overlapping itself (a slot that comes
 * while the job's previous run is still going, queued or waiting to retry is skipped and logged),
 * at most `concurrency` backups at once, transient failures retried with backoff.
 * Throws a ConfigError naming the job when a schedule is invalid (loadJobs reports that earlier).
 */
export function startDaemon(options: DaemonOptions): Daemon {
  const now = options.now ?? (() => new Date());
  const isTransient = options.isTransient ?? isTransientFailure;
  const retryBaseMs = options.retryBaseMs ?? 30_000;
  const abortGraceMs = options.abortGraceMs ?? 60_000;
  const log = options.logger;

  const states: JobState[] = options.jobs.map((job) => ({
    job,
    schedule: scheduleOf(job),
    log: log.child({ job: job.name }),
    timer: undefined,
    lastSlot: undefined,
    next: undefined,
    busy: false,
  }));

  let stopRequests = 0;
  /** Aborted on the first stop request: cancels queued runs and retry waits. */
  const stopping = new AbortController();
  /** One controller per backup in progress. */
  const running = new Set<AbortController>();
  const executions = new Set<Promise<void>>();
  const otherTimers = new Set<NodeJS.Timeout>();
  const slots = new Semaphore(Math.max(1, options.concurrency));
  let resolveDone!: (stopped: DaemonStopped) => void;
  const done = new Promise<DaemonStopped>((r) => (resolveDone = r));
  let finished = false;

  const finish = () => {
    if (finished) return;
    finished = true;
    for (const t of otherTimers) clearTimeout(t);
    const abandoned = executions.size > 0 ? states.filter((s) => s.busy).map((s) => s.job.name) : [];
    if (abandoned.length > 0) log.error(`daemon stopped, abandoning the run(s) of ${abandoned.join(', ')} that did not stop`);
    else log.info('daemon stopped');
    resolveDone({ abandoned });
  };
  const maybeFinish = () => {
    if (stopRequests > 0 && executions.size === 0) finish();
  };
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      otherTimers.delete(t);
      fn();
    }, ms);
    otherTimers.add(t);
  };

  function logNext(state: JobState, message = 'next run'): void {
    if (!state.next) {
      state.log.warn('no further runs: the schedule never matches again', { schedule: state.schedule.expression });
      return;
    }
    state.log.info(message, {
      at: state.next.toISOString(),
      local: formatInTimeZone(state.next, state.schedule.timezone),
      tz: state.schedule.timezone,
      schedule: state.schedule.expression,
    });
  }

  function scheduleNext(state: JobState): void {
    if (stopRequests > 0) return;
    const from = new Date(Math.max(now().getTime(), state.lastSlot?.getTime() ?? -Infinity));
    state.next = state.schedule.nextAfter(from);
    if (state.next) arm(state, state.next);
  }

  function arm(state: JobState, slot: Date): void {
    const delay = Math.min(Math.max(slot.getTime() - now().getTime(), 0), MAX_TIMER_MS);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (stopRequests > 0) return;
      // A long wait is several timers, and a timer may fire a little early: wait for the slot.
      if (now().getTime() < slot.getTime()) return arm(state, slot);
      state.lastSlot = slot;
      if (state.busy) {
        scheduleNext(state);
        state.log.warn('skipped: the previous run of this job is still in progress', {
          slot: slot.toISOString(),
          next: state.next?.toISOString(),
        });
      } else {
        start(state, 'schedule');
        scheduleNext(state);
      }
    }, delay);
  }

  function start(state: JobState, trigger: 'schedule' | 'start'): void {
    state.busy = true;
    const execution = execute(state, trigger).finally(() => {
      state.busy = false;
      executions.delete(execution);
      if (stopRequests === 0) logNext(state);
      maybeFinish();
    });
    executions.add(execution);
  }

  async function execute(state: JobState, trigger: 'schedule' | 'start'): Promise<void> {
    const { job } = state;
    /** The partial result whose upload the next attempt retries. */
    let partial: BackupResult | undefined;
    for (let attempt = 1; ; attempt++) {
      const release = await slots.acquire(stopping.signal);
      if (!release) {
        state.log.info('run cancelled: the daemon is stopping', { trigger });
        return;
      }
      let outcome: { result: BackupResult; failure: unknown };
      try {
        outcome = await attemptRun(state, trigger, attempt, partial);
      } finally {
        release();
      }
      const { result, failure } = outcome;
      const failed = result.status === 'failed' || result.status === 'partial';
      const retry = failed && attempt <= options.retries && stopRequests === 0 && safe(() => isTransient(failure), false);
      if (!retry) return report(state, result, attempt);
      partial = result.status === 'partial' && result.name && options.retryUpload ? result : undefined;
      const delay = retryBaseMs * 4 ** (attempt - 1);
      state.log.warn(partial ? 'upload failed for a transient cause; retrying the upload of the local backup' : 'run failed for a transient cause; retrying', {
        attempt,
        retries: options.retries,
        retryInMs: delay,
        code: result.error?.code,
        error: result.error?.message,
      });
      if (!(await sleep(delay, stopping.signal, later))) return report(state, result, attempt);
    }
  }

  async function attemptRun(state: JobState, trigger: string, attempt: number, partial: BackupResult | undefined) {
    const controller = new AbortController();
    running.add(controller);
    const startedAt = now();
    state.log.info(partial ? 'upload retry started' : 'backup started', { trigger, attempt, ...(partial ? { backup: partial.name } : {}) });
    try {
      const result = partial && options.retryUpload ? await options.retryUpload(state.job, partial, controller.signal) : await options.runJob(state.job, controller.signal);
      return { result, failure: result as unknown };
    } catch (err) {
      return { result: failedResult(state.job, err, startedAt, now()), failure: err };
    } finally {
      running.delete(controller);
    }
  }

  function report(state: JobState, result: BackupResult, attempts: number): void {
    const fields = { status: result.status, backup: result.name, durationMs: result.durationMs, attempts };
    if (result.status === 'ok' || result.status === 'dry-run') state.log.info('backup finished', { ...fields, sizeBytes: result.sizeBytes });
    else {
      const level = result.status === 'partial' ? 'warn' : 'error';
      state.log[level]('backup failed', { ...fields, code: result.error?.code, error: result.error?.message });
    }
    safe(() => options.onRunFinished?.(state.job, result), undefined, (err) =>
      state.log.error('onRunFinished failed', { error: err instanceof Error ? err.message : String(err) }),
    );
  }

  let aborted = false;
  function abortRunning(why: string): void {
    if (aborted) return;
    aborted = true;
    if (running.size > 0) log.warn(`aborting ${running.size} running backup(s): ${why}`);
    for (const c of running) c.abort(new Error(why));
    later(abortGraceMs, () => {
      if (executions.size > 0) log.error(`giving up on ${executions.size} run(s) that did not stop within ${abortGraceMs} ms of the abort`);
      finish();
    });
  }

  function stop(reason = 'stop requested'): void {
    stopRequests++;
    if (stopRequests === 1) {
      for (const s of states) if (s.timer) clearTimeout(s.timer);
      stopping.abort();
      const active = states.filter((s) => s.busy).map((s) => s.job.name);
      log.info(`stopping (${reason}): no new runs`, { running: active.length ? active.join(',') : undefined });
      if (running.size > 0) {
        log.info(`waiting up to ${options.stopTimeoutMs} ms for running backups to finish`);
        later(options.stopTimeoutMs, () => abortRunning(`still running ${options.stopTimeoutMs} ms after the stop request`));
      }
      maybeFinish();
    } else if (stopRequests === 2) {
      abortRunning(`${reason} again: stopping at once`);
      maybeFinish();
    } else {
      log.warn('not waiting for running backups to clean up');
      finish();
    }
  }

  log.info(`daemon started with ${states.length} job(s)`, { concurrency: options.concurrency, retries: options.retries });
  for (const state of states) {
    scheduleNext(state);
    logNext(state);
  }
  for (const state of states) if (state.job.settings.BACKUP_RUN_ON_START) start(state, 'start');
  if (options.signal) {
    if (options.signal.aborted) stop('signal');
    else options.signal.addEventListener('abort', () => stop('signal'), { once: true });
  }

  return { done, stop, busyJobs: () => states.filter((s) => s.busy).map((s) => s.job.name) };
}

/** Minimal process surface, so tests can emit signals on an EventEmitter. */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: () => void): unknown;
  off(event: NodeJS.Signals, listener: () => void): unknown;
}

/**
 * SIGTERM / SIGINT → daemon.stop() (a second one aborts at once); SIGHUP → onReopenLogs (logrotate).
 * Returns a function that removes the handlers.
 */
export function installSignalHandlers(
  daemon: Pick<Daemon, 'stop'>,
  options: { onReopenLogs?: () => void; target?: SignalSource } = {},
): () => void {
  const target = options.target ?? process;
  const onTerm = () => daemon.stop('SIGTERM');
  const onInt = () => daemon.stop('SIGINT');
  const onHup = () => options.onReopenLogs?.();
  target.on('SIGTERM', onTerm);
  target.on('SIGINT', onInt);
  target.on('SIGHUP', onHup);
  return () => {
    target.off('SIGTERM', onTerm);
    target.off('SIGINT', onInt);
    target.off('SIGHUP', onHup);
  };
}

function scheduleOf(job: JobConfig): Schedule {
  try {
    return parseSchedule(job.settings.BACKUP_SCHEDULE, job.settings.BACKUP_TZ);
  } catch (err) {
    throw new ConfigError([`job "${job.name}": ${(err as Error).message}`]);
  }
}

/** A failed BackupResult for a runJob that threw. */
function failedResult(job: JobConfig, err: unknown, startedAt: Date, finishedAt: Date): BackupResult {
  const error =
    err instanceof AppError
      ? { code: err.code, message: err.message, hint: err.hint, exitCode: err.exitCode }
      : { code: 'internal', message: err instanceof Error ? err.message : String(err), exitCode: ExitCode.failure };
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

function safe<T>(fn: () => T, fallback: T, onError?: (err: unknown) => void): T {
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

/** FIFO slots; acquire resolves undefined when `signal` aborts first. */
class Semaphore {
  private free: number;
  private readonly waiters: Array<(release: (() => void) | undefined) => void> = [];
  constructor(size: number) {
    this.free = size;
  }
  acquire(signal: AbortSignal): Promise<(() => void) | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const waiter = (release: (() => void) | undefined) => {
        signal.removeEventListener('abort', onAbort);
        resolve(release);
      };
      const onAbort = () => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        resolve(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }
  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next(this.releaser());
      else this.free++;
    };
  }
}
