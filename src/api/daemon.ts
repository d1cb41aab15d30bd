import { releaseHeldLocks } from '../catalog/run-lock.js';
import type { JobConfig } from '../config/job.js';
import { AppError, ExitCode } from '../errors/index.js';
import { messageOf } from '../errors/error-message.js';
import type { Logger } from '../logging/logger.js';
import { startMetricsServer, type MetricsServer } from '../metrics/http-server.js';
import { BackupMetrics } from '../metrics/metrics.js';
import type { BackupResult } from '../model/backup-result.js';
import { installSignalHandlers, startDaemon, type Daemon, type DaemonStopped, type SignalSource } from '../scheduler/daemon.js';
import { DaemonHealth, seedFromStorage, type SchedulerState } from './health.js';
import { DASHBOARD_REFRESH_MS, DashboardCache, daemonDashboard } from './dashboard-cache.js';
import { runJob } from './run-job.js';
import { isServerJob, runServer } from './server-run.js';
import { expandServerJobs } from './server-jobs.js';
import { jobDashboardTarget } from './dashboard-data.js';
import { WalMetricsRefresher } from './wal-metrics.js';

export type { DaemonStopped } from '../scheduler/daemon.js';

/** Options of {@link runDaemon}. */
export interface RunDaemonOptions {
  readonly logger: Logger;
  /** METRICS_ADDR: where /metrics, /healthz and /readyz are served (none when undefined). */
  readonly metricsAddr?: string | undefined;
  /** DASHBOARD_TOKEN: what the dashboard at METRICS_ADDR asks for (none: loopback only). */
  readonly dashboardToken?: string | undefined;
  /** How often the dashboard rereads every job's backups (default 60 s; also after each run). */
  readonly dashboardRefreshMs?: number | undefined;
  /** BACKUP_STOP_TIMEOUT, BACKUP_CONCURRENCY, BACKUP_RETRIES. */
  readonly limits: { readonly stopTimeoutMs: number; readonly concurrency: number; readonly retries: number };
  /** How often the WAL series are read again from storage (default 60 s; also after each run). */
  readonly walMetricsRefreshMs?: number | undefined;
  /** SIGHUP (logrotate): reopen the log file. */
  readonly reopenLogs?: (() => void) | undefined;
  /** Where SIGTERM/SIGINT/SIGHUP come from (default: the process). */
  readonly signals?: SignalSource | undefined;
}

/**
 * `pgbak daemon`: seed the metrics and the health state from storage (every job has its series
 * from the start), serve /metrics, /healthz (liveness) and /readyz (freshness), run every job on its schedule (each run is {@link runJob}; the retry of a partial run
 * resumes it) until SIGTERM/SIGINT, then stop the server. When a run had to be abandoned, the
 * run locks this process holds are released before returning (the next start would take them for
 * a live run while this process lives); see {@link abandonedError}.
 */
export async function runDaemon(jobs: readonly JobConfig[], options: RunDaemonOptions): Promise<DaemonStopped> {
  const { logger } = options;
  const metrics = new BackupMetrics({ countRuns: true });
  const health = new DaemonHealth(jobs);
  await seedFromStorage(jobs, metrics, health, logger);
  // seedFromStorage set the WAL series from the same status read; from now on they are reread.
  const walMetrics = new WalMetricsRefresher(jobs, metrics, logger);
  walMetrics.start(options.walMetricsRefreshMs);
  let state: SchedulerState = 'starting';
  let server: MetricsServer | undefined;
  let dashboard: DashboardCache | undefined;
  if (options.metricsAddr) {
    // Whole-server jobs (BACKUP_DATABASES): each database, found again at each full refresh.
    dashboard = jobs.some(isServerJob)
      ? new DashboardCache([], logger, {
          discover: async () => (await expandServerJobs(jobs, { discover: true, logger })).map(jobDashboardTarget),
        })
      : new DashboardCache(jobs, logger);
    await dashboard.refresh();
    server = await startMetricsServer(options.metricsAddr, metrics, {
      live: () => health.liveness(state),
      ready: () => health.report(),
      extra: daemonDashboard(options.metricsAddr, options.dashboardToken, dashboard, logger),
    });
    dashboard.start(options.dashboardRefreshMs ?? DASHBOARD_REFRESH_MS);
    logger.info(`metrics served at ${server.url}/metrics`, {
      healthz: `${server.url}/healthz`,
      readyz: `${server.url}/readyz`,
      dashboard: `${server.url}/`,
    });
  }
  let removeHandlers: (() => void) | undefined;
  let stopped: DaemonStopped;
  try {
    const daemon = startScheduler(jobs, options, (job, result, databases) => {
      // A whole-server run: the metrics of each database (labelled by it), not of the summary.
      for (const r of databases ?? [result]) metrics.recordRun(r);
      health.recordRun(job, result, databases);
      void walMetrics.refresh(job.name);
      void dashboard?.refresh(job.name).catch(() => undefined);
    });
    state = 'running';
    removeHandlers = handleSignals(
      {
        stop: (reason) => {
          state = 'stopping';
          daemon.stop(reason);
        },
      },
      options,
    );
    stopped = await daemon.done;
  } finally {
    state = 'stopped';
    removeHandlers?.();
    dashboard?.stop();
    walMetrics.stop();
    await server?.close().catch(() => undefined);
  }
  // The abandoned run is still inside this process: its lock holds our pid. Exiting ends the run.
  if (stopped.abandoned.length > 0) releaseHeldLocks();
  return stopped;
}

/** The error of a daemon that stopped with runs abandoned (exit 1). */
export function abandonedError(stopped: DaemonStopped): AppError {
  return new AppError(
    'daemon-abandoned',
    `stopped, abandoning the backup of ${stopped.abandoned.join(', ')}, which did not stop after the abort`,
    {
      exitCode: ExitCode.failure,
      hint: 'S3 or PostgreSQL may not be answering (STORAGE_TIMEOUT bounds each S3 request); `pgbak list` shows anything left without its manifest',
    },
  );
}

function startScheduler(
  jobs: readonly JobConfig[],
  options: RunDaemonOptions,
  onRunFinished: (job: JobConfig, result: BackupResult, databases?: readonly BackupResult[]) => void,
): Daemon {
  /** The per-database results of each whole-server job's last run, handed on with its summary. */
  const serverResults = new Map<string, readonly BackupResult[]>();
  const { logger, limits } = options;
  return startDaemon({
    jobs,
    logger,
    stopTimeoutMs: limits.stopTimeoutMs,
    concurrency: limits.concurrency,
    retries: limits.retries,
    // A whole-server job (BACKUP_DATABASES): one server run, its summary as the run's result.
    runJob: (job, signal) =>
      isServerJob(job)
        ? runServer(job, { logger, signal, concurrency: limits.concurrency }).then((r) => {
            serverResults.set(job.name, r.results);
            return r.summary;
          })
        : runJob(job, { logger, signal }),
    retryUpload: (job, partial, signal) => runJob(job, { logger, signal, resume: partial }),
    onRunFinished: (job, result) => {
      const databases = serverResults.get(job.name);
      serverResults.delete(job.name);
      onRunFinished(job, result, databases);
    },
  });
}

function handleSignals(daemon: Pick<Daemon, 'stop'>, options: RunDaemonOptions): () => void {
  const { logger } = options;
  return installSignalHandlers(daemon, {
    ...(options.signals ? { target: options.signals } : {}),
    onReopenLogs: () => {
      try {
        options.reopenLogs?.();
        logger.info('log file reopened (SIGHUP)');
      } catch (err) {
        logger.error(`cannot reopen the log file: ${messageOf(err)}`);
      }
    },
  });
}
