import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BackupResult } from '../../src/model/backup-result.js';
import { type JobConfig, resolveJob } from '../../src/config/job.js';
import { loadSettings } from '../../src/config/load.js';
import {
  type AppError,
  ConfigError,
  DatabaseError,
  EncryptionError,
  InterruptedError,
  PartialError,
  PgToolError,
  StorageError,
} from '../../src/errors/index.js';
import { MemoryLogger } from '../../src/logging/logger.js';
import { type DaemonOptions, installSignalHandlers, isTransientFailure, startDaemon } from '../../src/scheduler/daemon.js';

// Fake runJob: this file tests scheduling; the real backup is tested elsewhere.

const T0 = new Date('2025-01-01T00:00:00.000Z');
const EVERY_SECOND = '* * * * * *';

function job(name: string, env: Record<string, string> = {}): JobConfig {
  const { settings } = loadSettings({
    env: { DATABASE_URL: `postgresql://h/${name}`, BACKUP_SCHEDULE: EVERY_SECOND, ...env },
    envFile: false,
    cwd: '/tmp',
  });
  return resolveJob(settings, { cwd: '/tmp', name });
}

function okResult(j: JobConfig): BackupResult {
  const at = new Date().toISOString();
  return {
    status: 'ok',
    job: j.name,
    database: j.database,
    name: `${j.database}_x`,
    startedAt: at,
    finishedAt: at,
    durationMs: 0,
    sizeBytes: 1,
    sha256: 'x',
    encrypted: false,
    locations: [],
    error: undefined,
    warnings: [],
  };
}

interface Call {
  job: string;
  startedAt: number;
  signal: AbortSignal;
  endedAt?: number;
  cleanedUpAt?: number;
}

/** A runJob that takes `durationMs`, stops (after `cleanupMs` of cleanup) when aborted, and counts overlap. */
function fakeRunner(
  opts: { durationMs?: (job: string, n: number) => number; fail?: (job: string, n: number) => unknown; cleanupMs?: number } = {},
) {
  const calls: Call[] = [];
  const active = new Map<string, number>();
  let activeTotal = 0;
  let maxTotal = 0;
  let maxPerJob = 0;
  const runJob = (j: JobConfig, signal: AbortSignal): Promise<BackupResult> => {
    const n = calls.filter((c) => c.job === j.name).length + 1;
    const call: Call = { job: j.name, startedAt: Date.now(), signal };
    calls.push(call);
    active.set(j.name, (active.get(j.name) ?? 0) + 1);
    activeTotal++;
    maxTotal = Math.max(maxTotal, activeTotal);
    maxPerJob = Math.max(maxPerJob, active.get(j.name)!);
    const end = () => {
      active.set(j.name, active.get(j.name)! - 1);
      activeTotal--;
      call.endedAt = Date.now();
    };
    return new Promise<BackupResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        end();
        const failure = opts.fail?.(j.name, n);
        if (failure) reject(failure);
        else resolve(okResult(j));
      }, opts.durationMs?.(j.name, n) ?? 100);
      const onAbort = () => {
        clearTimeout(timer);
        // Cleanup (abort the multipart upload, remove temp files) takes a moment.
        setTimeout(() => {
          call.cleanedUpAt = Date.now();
          end();
          reject(new InterruptedError('backup aborted'));
        }, opts.cleanupMs ?? 200);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  };
  return { runJob, calls, stats: () => ({ maxTotal, maxPerJob }) };
}

function options(jobs: JobConfig[], runJob: DaemonOptions['runJob'], extra: Partial<DaemonOptions> = {}) {
  const logger = new MemoryLogger();
  const results: { job: string; result: BackupResult }[] = [];
  const opts: DaemonOptions = {
    jobs,
    runJob,
    logger,
    onRunFinished: (j, result) => results.push({ job: j.name, result }),
    stopTimeoutMs: 10_000,
    concurrency: 1,
    retries: 0,
    retryBaseMs: 1000,
    ...extra,
  };
  const messages = (msg: string | RegExp, jobName?: string) =>
    logger.lines.filter(
      (l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)) && (jobName === undefined || l.fields['job'] === jobName),
    );
  return { opts, logger, results, messages };
}

/** Track whether a promise has settled without awaiting it. */
function settled(p: Promise<unknown>): () => boolean {
  let done = false;
  void p.then(() => (done = true));
  return () => done;
}

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('startDaemon scheduling', () => {
  it('runs a per-second job every second and logs the next run at start and after each run', async () => {
    const runner = fakeRunner();
    const { opts, results, messages } = options([job('shop')], runner.runJob);
    const daemon = startDaemon(opts);
    expect(messages('next run', 'shop')[0]!.fields).toMatchObject({ at: '2025-01-01T00:00:01.000Z', tz: 'UTC' });

    await vi.advanceTimersByTimeAsync(5_500);
    expect(runner.calls.map((c) => c.startedAt - T0.getTime())).toEqual([1000, 2000, 3000, 4000, 5000]);
    expect(results.map((r) => r.result.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(messages('next run', 'shop')).toHaveLength(1 + 5);
    expect(messages('next run', 'shop')[5]!.fields['at']).toBe('2025-01-01T00:00:06.000Z');

    daemon.stop();
    await daemon.done;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runner.calls).toHaveLength(5); // nothing after the stop
  });

  it('skips a slot while the previous run is still going: never doubled, never queued', async () => {
    const runner = fakeRunner({ durationMs: () => 2_500 });
    const { opts, messages } = options([job('slow')], runner.runJob);
    const daemon = startDaemon(opts);
    await vi.advanceTimersByTimeAsync(10_200);

    // Runs start at 1 s, 4 s, 7 s, 10 s; the slots at 2, 3, 5, 6, 8, 9 s are skipped.
    expect(runner.calls.map((c) => (c.startedAt - T0.getTime()) / 1000)).toEqual([1, 4, 7, 10]);
    expect(runner.stats().maxPerJob).toBe(1);
    const skipped = messages(/^skipped: the previous run/, 'slow');
    expect(skipped.map((l) => l.fields['slot'])).toEqual([2, 3, 5, 6, 8, 9].map((s) => `2025-01-01T00:00:0${s}.000Z`));
    expect(skipped.every((l) => l.level === 'warn')).toBe(true);
    daemon.stop('test');
    daemon.stop('test'); // abort at once
    await vi.advanceTimersByTimeAsync(200); // the aborted run's cleanup
    await daemon.done;
  });

  it('runs on the schedule in the job’s time zone, and once at start when asked', async () => {
    const runner = fakeRunner();
    const paris = job('paris', { BACKUP_SCHEDULE: '0 6 * * *', BACKUP_TZ: 'Europe/Paris', BACKUP_RUN_ON_START: 'true' });
    const { opts, messages } = options([paris], runner.runJob);
    const daemon = startDaemon(opts);
    expect(messages('next run')[0]!.fields).toMatchObject({
      at: '2025-01-01T05:00:00.000Z',
      local: '2025-01-01 06:00:00',
      tz: 'Europe/Paris',
    });
    await vi.advanceTimersByTimeAsync(2 * 86_400_000);
    expect(runner.calls.map((c) => new Date(c.startedAt).toISOString())).toEqual([
      '2025-01-01T00:00:00.000Z', // BACKUP_RUN_ON_START
      '2025-01-01T05:00:00.000Z',
      '2025-01-02T05:00:00.000Z',
    ]);
    daemon.stop();
    await daemon.done;
  });

  it('waits longer than one timer can (a yearly schedule) and runs once at the slot', async () => {
    const runner = fakeRunner();
    const { opts } = options([job('yearly', { BACKUP_SCHEDULE: '0 0 1 1 *' })], runner.runJob);
    const daemon = startDaemon(opts);
    await vi.advanceTimersByTimeAsync(366 * 86_400_000);
    expect(runner.calls.map((c) => new Date(c.startedAt).toISOString())).toEqual(['2026-01-01T00:00:00.000Z']);
    daemon.stop();
    await daemon.done;
  });

  it('rejects an invalid schedule with the job’s name', () => {
    const bad = { ...job('bad'), schedule: { ...job('bad').schedule, timezone: 'Mars/Olympus' } };
    expect(() => startDaemon(options([bad], fakeRunner().runJob).opts)).toThrow(ConfigError);
    expect(() => startDaemon(options([bad], fakeRunner().runJob).opts)).toThrow(/job "bad": unknown time zone "Mars\/Olympus"/);
  });
});

describe('startDaemon stop', () => {
  it('stops scheduling and lets a running backup finish within the stop timeout', async () => {
    const runner = fakeRunner({ durationMs: () => 5_000 });
    const { opts, results } = options([job('shop')], runner.runJob, { stopTimeoutMs: 10_000 });
    const daemon = startDaemon(opts);
    const isDone = settled(daemon.done);
    await vi.advanceTimersByTimeAsync(2_000); // the run started at 1 s and ends at 6 s
    daemon.stop('SIGTERM');
    await vi.advanceTimersByTimeAsync(3_900);
    expect(isDone()).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(isDone()).toBe(true);
    expect(runner.calls).toHaveLength(1);
    expect(runner.calls[0]!.signal.aborted).toBe(false);
    expect(results.map((r) => r.result.status)).toEqual(['ok']);
  });

  it('aborts a backup still running at the stop timeout, waits for its cleanup, then resolves', async () => {
    const runner = fakeRunner({ durationMs: () => 60_000, cleanupMs: 300 });
    const controller = new AbortController();
    const { opts, results } = options([job('shop')], runner.runJob, { stopTimeoutMs: 3_000, signal: controller.signal });
    const daemon = startDaemon(opts);
    const isDone = settled(daemon.done);
    await vi.advanceTimersByTimeAsync(2_000);
    controller.abort();
    await vi.advanceTimersByTimeAsync(2_900);
    expect(runner.calls[0]!.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(200); // 3 s after the stop request
    expect(runner.calls[0]!.signal.aborted).toBe(true);
    expect(isDone()).toBe(false); // cleanup still running
    await vi.advanceTimersByTimeAsync(300);
    expect(isDone()).toBe(true);
    expect(runner.calls[0]!.cleanedUpAt).toBe(T0.getTime() + 5_300);
    expect(results.map((r) => [r.result.status, r.result.error?.code])).toEqual([['failed', 'interrupted']]);
  });

  it('aborts at once on a second stop request, still waiting for the cleanup', async () => {
    const runner = fakeRunner({ durationMs: () => 60_000, cleanupMs: 300 });
    const { opts } = options([job('shop')], runner.runJob, { stopTimeoutMs: 600_000 });
    const daemon = startDaemon(opts);
    const isDone = settled(daemon.done);
    await vi.advanceTimersByTimeAsync(1_500);
    daemon.stop('SIGTERM');
    await vi.advanceTimersByTimeAsync(100);
    expect(runner.calls[0]!.signal.aborted).toBe(false);
    daemon.stop('SIGTERM');
    expect(runner.calls[0]!.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(299);
    expect(isDone()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(isDone()).toBe(true);
  });

  it('gives up on a run that ignores the abort after the grace period', async () => {
    const never = vi.fn(() => new Promise<BackupResult>(() => undefined));
    const { opts, messages } = options([job('stuck')], never, { stopTimeoutMs: 1_000, abortGraceMs: 5_000 });
    const daemon = startDaemon(opts);
    const isDone = settled(daemon.done);
    await vi.advanceTimersByTimeAsync(1_000);
    daemon.stop();
    await vi.advanceTimersByTimeAsync(5_999);
    expect(isDone()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(isDone()).toBe(true);
    expect(messages(/^giving up on 1 run/)).toHaveLength(1);
  });

  it('installSignalHandlers: SIGTERM/SIGINT stop the daemon, SIGHUP reopens logs, uninstall removes them', () => {
    const target = new EventEmitter();
    const stop = vi.fn();
    const onReopenLogs = vi.fn();
    const uninstall = installSignalHandlers({ stop }, { onReopenLogs, target: target as never });
    target.emit('SIGTERM');
    target.emit('SIGINT');
    target.emit('SIGHUP');
    expect(stop.mock.calls).toEqual([['SIGTERM'], ['SIGINT']]);
    expect(onReopenLogs).toHaveBeenCalledTimes(1);
    uninstall();
    expect(target.listenerCount('SIGTERM') + target.listenerCount('SIGINT') + target.listenerCount('SIGHUP')).toBe(0);
  });
});

describe('startDaemon failures, retries and concurrency', () => {
  const onceAtStart = (name: string) => job(name, { BACKUP_SCHEDULE: '0 0 1 1 *', BACKUP_RUN_ON_START: 'true' });

  it('retries a transient failure with backoff, up to `retries` times', async () => {
    const unreachable = new StorageError('storage-endpoint', 'S3 endpoint unreachable');
    const runner = fakeRunner({ fail: (_j, n) => (n <= 2 ? unreachable : undefined) });
    const { opts, results } = options([onceAtStart('shop')], runner.runJob, { retries: 2, retryBaseMs: 1_000 });
    const daemon = startDaemon(opts);
    await vi.advanceTimersByTimeAsync(60_000);
    // Attempt 1 at 0 s (100 ms), retry after 1 s, then after 4 s.
    expect(runner.calls.map((c) => c.startedAt - T0.getTime())).toEqual([0, 1_100, 5_200]);
    expect(results.map((r) => r.result.status)).toEqual(['ok']);
    daemon.stop();
    await daemon.done;
  });

  it('retries a partial run (upload failed, transient cause) by uploading its backup, not by dumping again', async () => {
    const partial: BackupResult = {
      ...okResult(job('shop')),
      status: 'partial',
      name: 'shop_20250101_000000',
      error: {
        code: 'partial',
        message: 'backup kept locally, but the upload failed: S3 endpoint unreachable',
        exitCode: 3,
        causeCode: 'storage-endpoint',
      },
    };
    let dumps = 0;
    const uploads: string[] = [];
    const { opts, results, messages } = options([onceAtStart('shop')], async () => (dumps++, partial), {
      retries: 2,
      retryBaseMs: 1_000,
      retryUpload: async (_j, p) => {
        uploads.push(p.name!);
        return uploads.length === 1 ? p : { ...p, status: 'ok', error: undefined };
      },
    });
    const daemon = startDaemon(opts);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(dumps).toBe(1);
    expect(uploads).toEqual(['shop_20250101_000000', 'shop_20250101_000000']);
    expect(results.map((r) => [r.result.status, r.result.name])).toEqual([['ok', 'shop_20250101_000000']]);
    expect(messages('upload failed for a transient cause; retrying the upload of the local backup', 'shop')).toHaveLength(2);
    daemon.stop();
    await daemon.done;
  });

  it('stops retrying after `retries` attempts and reports the failure once', async () => {
    const runner = fakeRunner({ fail: () => new DatabaseError('db-connection-refused', 'connection refused') });
    const { opts, results } = options([onceAtStart('shop')], runner.runJob, { retries: 2, retryBaseMs: 1_000 });
    const daemon = startDaemon(opts);
    await vi.advanceTimersByTimeAsync(600_000);
    expect(runner.calls).toHaveLength(3);
    expect(results.map((r) => [r.result.status, r.result.error?.code])).toEqual([['failed', 'db-connection-refused']]);
    daemon.stop();
    await daemon.done;
  });

  it.each([
    ['a configuration error', new ConfigError(['DATABASE_URL: is required'])],
    ['a missing pg_dump', new PgToolError('pg_dump not found')],
    ['a missing GPG key', new EncryptionError('gpg-key-missing', 'no public key for x')],
    ['an unknown error', new Error('boom')],
  ])('does not retry %s', async (_label, error) => {
    const runner = fakeRunner({ fail: () => error });
    const { opts, results } = options([onceAtStart('shop')], runner.runJob, { retries: 3, retryBaseMs: 1_000 });
    const daemon = startDaemon(opts);
    await vi.advanceTimersByTimeAsync(600_000);
    expect(runner.calls).toHaveLength(1);
    expect(results).toHaveLength(1);
    expect(results[0]!.result.status).toBe('failed');
    daemon.stop();
    await daemon.done;
  });

  it('a stop request cancels a pending retry', async () => {
    const runner = fakeRunner({ fail: () => new DatabaseError('db-timeout', 'timeout') });
    const { opts, results } = options([onceAtStart('shop')], runner.runJob, { retries: 2, retryBaseMs: 30_000 });
    const daemon = startDaemon(opts);
    await vi.advanceTimersByTimeAsync(1_000); // first attempt failed; waiting 30 s
    daemon.stop();
    await daemon.done;
    expect(runner.calls).toHaveLength(1);
    expect(results.map((r) => r.result.error?.code)).toEqual(['db-timeout']);
  });

  it('one failing job does not stop the other', async () => {
    const runner = fakeRunner({ fail: (j) => (j === 'crm' ? new DatabaseError('db-auth-failed', 'authentication failed') : undefined) });
    const { opts, results } = options([job('shop'), job('crm')], runner.runJob, { concurrency: 2, retries: 2 });
    const daemon = startDaemon(opts);
    await vi.advanceTimersByTimeAsync(3_500);
    const byJob = (name: string) => results.filter((r) => r.job === name).map((r) => r.result.status);
    expect(byJob('shop')).toEqual(['ok', 'ok', 'ok']);
    expect(byJob('crm')).toEqual(['failed', 'failed', 'failed']);
    daemon.stop();
    await daemon.done;
  });

  it('never runs more than `concurrency` backups at once; a queued job skips its next slot', async () => {
    const runner = fakeRunner({ durationMs: () => 1_500 });
    const jobs = [job('a'), job('b'), job('c')];
    const { opts, messages } = options(jobs, runner.runJob, { concurrency: 2 });
    const daemon = startDaemon(opts);
    await vi.advanceTimersByTimeAsync(8_000);
    expect(runner.stats().maxTotal).toBe(2);
    expect(runner.stats().maxPerJob).toBe(1);
    for (const name of ['a', 'b', 'c']) expect(runner.calls.filter((c) => c.job === name).length).toBeGreaterThanOrEqual(2);
    // c waited for a slot from 1 s to 2.5 s: its 2 s slot was skipped, not queued behind it.
    expect(runner.calls.find((c) => c.job === 'c')!.startedAt - T0.getTime()).toBe(2_500);
    expect(messages(/^skipped/, 'c')[0]!.fields['slot']).toBe('2025-01-01T00:00:02.000Z');
    daemon.stop();
    daemon.stop(); // abort at once
    await vi.advanceTimersByTimeAsync(200); // the aborted runs' cleanup
    await daemon.done;
  });
});

describe('isTransientFailure', () => {
  const result = (status: BackupResult['status'], error?: AppError): BackupResult => ({
    ...okResult(job('r')),
    status,
    error: error && { code: error.code, message: error.message, exitCode: error.exitCode },
  });

  it('retries connection refused, timeouts, S3 unreachable and 5xx', () => {
    for (const code of ['db-connection-refused', 'db-timeout', 'db-starting', 'db-connection-lost']) {
      expect(isTransientFailure(new DatabaseError(code, 'x')), code).toBe(true);
    }
    expect(isTransientFailure(new StorageError('storage-endpoint', 'x'))).toBe(true);
    expect(isTransientFailure(new StorageError('storage-server-error', 'x'))).toBe(true);
    expect(isTransientFailure(result('failed', new DatabaseError('db-connection-refused', 'x')))).toBe(true);
    expect(isTransientFailure(result('partial', new StorageError('storage-endpoint', 'x')))).toBe(true);
    const http503 = Object.assign(new Error('Service Unavailable'), { $metadata: { httpStatusCode: 503 } });
    expect(isTransientFailure(new StorageError('storage', 'S3 put failed', { cause: http503 }))).toBe(true);
    expect(isTransientFailure(new PartialError('upload failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))).toBe(
      true,
    );
  });

  it('never retries configuration, keys, pg_dump, auth, permissions, locks or a success', () => {
    expect(isTransientFailure(new ConfigError(['x']))).toBe(false);
    expect(isTransientFailure(new PgToolError('x'))).toBe(false);
    expect(isTransientFailure(new EncryptionError('gpg-key-missing', 'x'))).toBe(false);
    expect(isTransientFailure(new DatabaseError('db-auth-failed', 'x'))).toBe(false);
    expect(isTransientFailure(new StorageError('storage-credentials', 'x'))).toBe(false);
    expect(isTransientFailure(new InterruptedError())).toBe(false);
    // A permanent class wins over a transient-looking cause.
    expect(isTransientFailure(new PgToolError('x', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }))).toBe(false);
    const http403 = Object.assign(new Error('Forbidden'), { $metadata: { httpStatusCode: 403 } });
    expect(isTransientFailure(new StorageError('storage', 'x', { cause: http403 }))).toBe(false);
    expect(isTransientFailure(result('failed', new ConfigError(['x'])))).toBe(false);
    expect(isTransientFailure(result('ok'))).toBe(false);
    expect(isTransientFailure(new Error('boom'))).toBe(false);
  });
});
