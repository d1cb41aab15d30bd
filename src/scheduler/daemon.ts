import type { BackupResult } from '../model/backup-result.js';
import type { JobConfig } from '../config/job.js';
import { ConfigError } from '../errors/index.js';
import { messageOf } from '../errors/error-message.js';
import type { Logger } from '../logging/logger.js';
import { type Schedule, formatInTimeZone, parseSchedule } from '../config/schedule.js';
import { isTransientFailure } from './transient-failure.js';
import { runWithRetries, safe } from './run-with-retries.js';
import { Semaphore } from './semaphore.js';

export { isTransientFailure, TRANSIENT_ERROR_CODES } from './transient-failure.js';

/** Options of {@link startDaemon}: the jobs, what one run of a job is, and the limits. */
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

/**
 * Start the scheduler: each job on its cron schedule, never overlapping itself (a slot that comes
 * while the job's previous run is still going, queued or waiting to retry is skipped and logged),
 * at most `concurrency` backups at once, transient failures retried with backoff.
 * Throws a ConfigError naming the job when a schedule is invalid (loadJobs reports that earlier).
 */
export function startDaemon(options: DaemonOptions): Daemon {
  const scheduler = new JobScheduler(options);
  scheduler.start();
  return { done: scheduler.done, stop: (reason) => scheduler.stop(reason) };
}

/** The jobs' timers, their runs in progress and the stop sequence of one daemon (see startDaemon). */
export class JobScheduler {
  /** Resolves once stopped (see Daemon.done). */
  readonly done: Promise<DaemonStopped>;
  private readonly now: () => Date;
  private readonly log: Logger;
  private readonly states: JobState[];
  private stopRequests = 0;
  /** Aborted on the first stop request: cancels queued runs and retry waits. */
  private readonly stopping = new AbortController();
  /** One controller per backup in progress. */
  private readonly running = new Set<AbortController>();
  private readonly executions = new Set<Promise<void>>();
  private readonly otherTimers = new Set<NodeJS.Timeout>();
  private readonly slots: Semaphore;
  private resolveDone!: (stopped: DaemonStopped) => void;
  private finished = false;
  private aborted = false;

  constructor(private readonly options: DaemonOptions) {
    this.now = options.now ?? (() => new Date());
    this.log = options.logger;
    this.slots = new Semaphore(Math.max(1, options.concurrency));
    this.states = options.jobs.map((job) => ({
      job,
      schedule: scheduleOf(job),
      log: this.log.child({ job: job.name }),
      timer: undefined,
      lastSlot: undefined,
      next: undefined,
      busy: false,
    }));
    this.done = new Promise<DaemonStopped>((r) => (this.resolveDone = r));
  }

  /** Arm every job's timer, start the BACKUP_RUN_ON_START runs, and listen to options.signal. */
  start(): void {
    const { options, log, states } = this;
    log.info(`daemon started with ${states.length} job(s)`, { concurrency: options.concurrency, retries: options.retries });
    for (const state of states) {
      this.scheduleNext(state);
      this.logNext(state);
    }
    for (const state of states) if (state.job.schedule.runOnStart) this.execute(state, 'start');
    if (options.signal) {
      if (options.signal.aborted) this.stop('signal');
      else options.signal.addEventListener('abort', () => this.stop('signal'), { once: true });
    }
  }

  /** A stop request (see Daemon.stop). */
  stop(reason = 'stop requested'): void {
    const { log, options } = this;
    this.stopRequests++;
    if (this.stopRequests === 1) {
      for (const s of this.states) if (s.timer) clearTimeout(s.timer);
      this.stopping.abort();
      const active = this.busyJobs();
      log.info(`stopping (${reason}): no new runs`, { running: active.length ? active.join(',') : undefined });
      if (this.running.size > 0) {
        log.info(`waiting up to ${options.stopTimeoutMs} ms for running backups to finish`);
        this.later(options.stopTimeoutMs, () => this.abortRunning(`still running ${options.stopTimeoutMs} ms after the stop request`));
      }
      this.maybeFinish();
    } else if (this.stopRequests === 2) {
      this.abortRunning(`${reason} again: stopping at once`);
      this.maybeFinish();
    } else {
      log.warn('not waiting for running backups to clean up');
      this.finish();
    }
  }

  /** Set the job's timer for `slot`; when it fires, run the job unless its previous run is still busy. */
  private arm(state: JobState, slot: Date): void {
    const delay = Math.min(Math.max(slot.getTime() - this.now().getTime(), 0), MAX_TIMER_MS);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (this.stopRequests > 0) return;
      // A long wait is several timers, and a timer may fire a little early: wait for the slot.
      if (this.now().getTime() < slot.getTime()) return this.arm(state, slot);
      state.lastSlot = slot;
      if (state.busy) {
        this.scheduleNext(state);
        state.log.warn('skipped: the previous run of this job is still in progress', {
          slot: slot.toISOString(),
          next: state.next?.toISOString(),
        });
      } else {
        this.execute(state, 'schedule');
        this.scheduleNext(state);
      }
    }, delay);
  }

  /** Run the job now (with its retries), tracked until it is over. */
  private execute(state: JobState, trigger: 'schedule' | 'start'): void {
    state.busy = true;
    const execution = this.runAndReport(state, trigger).finally(() => {
      state.busy = false;
      this.executions.delete(execution);
      if (this.stopRequests === 0) this.logNext(state);
      this.maybeFinish();
    });
    this.executions.add(execution);
  }

  private async runAndReport(state: JobState, trigger: 'schedule' | 'start'): Promise<void> {
    const { options } = this;
    const outcome = await runWithRetries(
      {
        job: state.job,
        log: state.log,
        slots: this.slots,
        stopping: this.stopping.signal,
        running: this.running,
        retries: options.retries,
        retryBaseMs: options.retryBaseMs ?? 30_000,
        isTransient: options.isTransient ?? isTransientFailure,
        now: this.now,
        later: (ms, fn) => this.later(ms, fn),
        runJob: options.runJob,
        retryUpload: options.retryUpload,
      },
      trigger,
    );
    if (outcome) this.report(state, outcome.result, outcome.attempts);
  }

  /** Log a run's final result and hand it to onRunFinished. */
  private report(state: JobState, result: BackupResult, attempts: number): void {
    const fields = { status: result.status, backup: result.name, durationMs: result.durationMs, attempts };
    if (result.status === 'ok' || result.status === 'dry-run')
      state.log.info('backup finished', { ...fields, sizeBytes: result.sizeBytes });
    else {
      const level = result.status === 'partial' ? 'warn' : 'error';
      state.log[level]('backup failed', { ...fields, code: result.error?.code, error: result.error?.message });
    }
    safe(
      () => this.options.onRunFinished?.(state.job, result),
      undefined,
      (err) => state.log.error('onRunFinished failed', { error: messageOf(err) }),
    );
  }

  private scheduleNext(state: JobState): void {
    if (this.stopRequests > 0) return;
    const from = new Date(Math.max(this.now().getTime(), state.lastSlot?.getTime() ?? -Infinity));
    state.next = state.schedule.nextAfter(from);
    if (state.next) this.arm(state, state.next);
  }

  private logNext(state: JobState, message = 'next run'): void {
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

  private abortRunning(why: string): void {
    if (this.aborted) return;
    this.aborted = true;
    const abortGraceMs = this.options.abortGraceMs ?? 60_000;
    if (this.running.size > 0) this.log.warn(`aborting ${this.running.size} running backup(s): ${why}`);
    for (const c of this.running) c.abort(new Error(why));
    this.later(abortGraceMs, () => {
      if (this.executions.size > 0)
        this.log.error(`giving up on ${this.executions.size} run(s) that did not stop within ${abortGraceMs} ms of the abort`);
      this.finish();
    });
  }

  private busyJobs(): string[] {
    return this.states.filter((s) => s.busy).map((s) => s.job.name);
  }

  private maybeFinish(): void {
    if (this.stopRequests > 0 && this.executions.size === 0) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const t of this.otherTimers) clearTimeout(t);
    const abandoned = this.executions.size > 0 ? this.busyJobs() : [];
    if (abandoned.length > 0) this.log.error(`daemon stopped, abandoning the run(s) of ${abandoned.join(', ')} that did not stop`);
    else this.log.info('daemon stopped');
    this.resolveDone({ abandoned });
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.otherTimers.delete(t);
      fn();
    }, ms);
    this.otherTimers.add(t);
  }
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
    return parseSchedule(job.schedule.cron, job.schedule.timezone);
  } catch (err) {
    throw new ConfigError([`job "${job.name}": ${(err as Error).message}`]);
  }
}
