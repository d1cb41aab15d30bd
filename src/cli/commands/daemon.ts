import { isAbsolute, resolve } from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import { runAfterBackup } from '../../api/after-backup.js';
import { backup } from '../../api/backup.js';
import { uploadBackup } from '../../api/upload-backup.js';
import type { BackupResult } from '../../model/backup-result.js';
import { hasSizeAnomaly, reportStart } from '../../api/report-run.js';
import { databaseStatus, jobTarget } from '../../api/status.js';
import type { JobConfig } from '../../config/job.js';
import { ExitCode } from '../../errors/index.js';
import { LineLogger, type Logger } from '../../logging/logger.js';
import { startMetricsServer, type HealthReport, type MetricsServer } from '../../metrics/http-server.js';
import { BackupMetrics, type MetricsSeed } from '../../metrics/metrics.js';

import { installSignalHandlers, startDaemon, type DaemonStopped } from '../../scheduler/daemon.js';
import { releaseHeldLocks } from '../../catalog/run-lock.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions } from '../options.js';
import { formatDuration } from '../../model/human-units.js';

/** `pgbak daemon`: run every job (or `--job`) on its schedule until SIGTERM/SIGINT. */
export function registerDaemon(program: Command): void {
  const cmd = program
    .command('daemon')
    .description(
      'run the backups on their schedules (BACKUP_SCHEDULE, BACKUP_TZ) until SIGTERM/SIGINT; serves /metrics and /healthz at METRICS_ADDR; SIGHUP reopens LOG_FILE',
    );
  // Every job of the config file unless --job names one (--all is the default).
  addCommonOptions(cmd).action(async (flags: CommonFlags) => {
    process.exitCode = await runDaemonCommand(flags);
  });
}

/** What /healthz knows of one job: its newest good backup and how its last run went. */
interface JobHealth {
  lastGoodAt: Date | undefined;
  lastRunOk: boolean | undefined;
}

async function runDaemonCommand(flags: CommonFlags): Promise<number> {
  const ctx = loadContext(flags, { openLogFile: false, allByDefault: flags.job === undefined });
  const { global, jobs } = ctx;
  const logFile = global.LOG_FILE ? (isAbsolute(global.LOG_FILE) ? global.LOG_FILE : resolve(global.LOG_FILE)) : undefined;
  const logger = new LineLogger({ level: global.BACKUP_LOG_LEVEL, file: logFile });
  try {
    return await serve(jobs, global.METRICS_ADDR, logger, {
      stopTimeoutMs: global.BACKUP_STOP_TIMEOUT,
      concurrency: global.BACKUP_CONCURRENCY,
      retries: global.BACKUP_RETRIES,
    });
  } finally {
    logger.close();
  }
}

async function serve(
  jobs: readonly JobConfig[],
  metricsAddr: string | undefined,
  logger: LineLogger,
  limits: { stopTimeoutMs: number; concurrency: number; retries: number },
): Promise<number> {
  const metrics = new BackupMetrics({ countRuns: true });
  const health = new Map<string, JobHealth>(jobs.map((j) => [j.name, { lastGoodAt: undefined, lastRunOk: undefined }]));
  await seedFromStorage(jobs, metrics, health, logger);

  let server: MetricsServer | undefined;
  if (metricsAddr) {
    server = await startMetricsServer(metricsAddr, metrics, { health: () => healthReport(jobs, health) });
    logger.info(`metrics served at ${server.url}/metrics`, { healthz: `${server.url}/healthz` });
  }
  let removeHandlers: (() => void) | undefined;
  let stopped: DaemonStopped;
  try {
    const daemon = startDaemon({
      jobs,
      logger,
      stopTimeoutMs: limits.stopTimeoutMs,
      concurrency: limits.concurrency,
      retries: limits.retries,
      runJob: (job, signal) => runOnce(job, signal, logger),
      retryUpload: (job, partial, signal) => retryUploadOnce(job, partial, signal, logger),
      onRunFinished: (job, result) => {
        metrics.recordRun(result, { anomaly: hasSizeAnomaly(result) });
        const h = health.get(job.name)!;
        if (result.status !== 'dry-run') h.lastRunOk = result.status === 'ok';
        if (result.status === 'ok') h.lastGoodAt = new Date(result.startedAt);
      },
    });
    removeHandlers = installSignalHandlers(daemon, {
      onReopenLogs: () => {
        try {
          logger.reopen();
          logger.info('log file reopened (SIGHUP)');
        } catch (err) {
          logger.error(`cannot reopen the log file: ${err instanceof Error ? err.message : String(err)}`);
        }
      },
    });
    stopped = await daemon.done;
  } finally {
    removeHandlers?.();
    await server?.close().catch(() => undefined);
  }
  if (stopped.abandoned.length > 0) {
    // The abandoned run is still inside this process: its lock holds our pid, which the next
    // start would take for a live run until this process is gone. Exiting ends the run.
    releaseHeldLocks();
    process.stderr.write(
      `pgbak: error: stopped, abandoning the backup of ${stopped.abandoned.join(', ')}, which did not stop after the abort\n` +
        'hint: S3 or PostgreSQL may not be answering (STORAGE_TIMEOUT bounds each S3 request); `pgbak list` shows anything left without its manifest\n',
    );
    return ExitCode.failure;
  }
  return ExitCode.ok;
}

/** One scheduled run: start ping, backup, then retention and reporting. */
async function runOnce(job: JobConfig, signal: AbortSignal, logger: Logger): Promise<BackupResult> {
  await reportStart({ job, logger });
  const result = await backup({ job, logger, signal });
  return runAfterBackup({ job, result, logger, prune: true, signal });
}

/** The retry of a partial run: upload the backup it made, then retention and reporting as for a run. */
async function retryUploadOnce(job: JobConfig, partial: BackupResult, signal: AbortSignal, logger: Logger): Promise<BackupResult> {
  const result = await uploadBackup({ job, name: partial.name!, logger, signal });
  return runAfterBackup({ job, result, logger, prune: true, signal });
}

/** Seed the gauges and the health state from the catalog and last-run records of every job. */
async function seedFromStorage(jobs: readonly JobConfig[], metrics: BackupMetrics, health: Map<string, JobHealth>, logger: Logger): Promise<void> {
  const seeds: MetricsSeed[] = [];
  for (const job of jobs) {
    try {
      const s = await databaseStatus(jobTarget(job));
      const h = health.get(job.name)!;
      h.lastGoodAt = s.newestGood ? new Date(s.newestGood.time) : undefined;
      const run = s.lastRun && s.lastRun.status !== 'dry-run' ? s.lastRun : undefined;
      // As `pgbak status`: a good backup is never proof that a later run succeeded (a clock that was ahead).
      if (run) h.lastRunOk = run.status === 'ok';
      const test = s.lastRestoreTest;
      seeds.push({
        job: job.name,
        database: job.database,
        lastSuccessAt: s.newestGood ? new Date(Date.parse(s.newestGood.time)) : undefined,
        lastRunAt: run?.finishedAt,
        lastStatus: run ? (run.status === 'ok' ? 'ok' : 'failed') : undefined,
        lastDurationMs: run?.durationMs,
        lastSizeBytes: s.newestGood?.sizeBytes,
        sizeAnomaly: s.sizeTrend.judgement?.anomalous,
        restoreTestLastSuccessAt: test?.ok ? test.at : undefined,
        restoreTestLastDurationMs: test?.durationMs,
      });
      for (const problem of [...s.warnings, ...s.reasons.filter((r) => r.startsWith('cannot read'))]) logger.warn(problem, { job: job.name });
    } catch (err) {
      logger.warn(`cannot read the backup history of job ${job.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  metrics.setFromState(seeds);
}

/** Healthy when every job's newest good backup is within its BACKUP_RPO and its last run succeeded. */
function healthReport(jobs: readonly JobConfig[], health: Map<string, JobHealth>): HealthReport {
  const now = Date.now();
  const detail = jobs.map((job) => {
    const h = health.get(job.name)!;
    const rpo = job.settings.BACKUP_RPO;
    const ageMs = h.lastGoodAt ? now - h.lastGoodAt.getTime() : undefined;
    const problems: string[] = [];
    if (ageMs === undefined) problems.push('no good backup');
    else if (ageMs >= rpo) problems.push(`newest good backup is ${formatDuration(ageMs)} old (BACKUP_RPO ${formatDuration(rpo)})`);
    if (h.lastRunOk === false) problems.push('last run failed');
    return {
      job: job.name,
      database: job.database,
      ok: problems.length === 0,
      newestGoodAgeSeconds: ageMs === undefined ? null : Math.round(ageMs / 1000),
      lastRunOk: h.lastRunOk ?? null,
      problems,
    };
  });
  return { ok: detail.every((d) => d.ok), detail };
}
