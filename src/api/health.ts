import type { JobConfig } from '../config/job.js';
import { messageOf } from '../errors/error-message.js';
import type { Logger } from '../logging/logger.js';
import type { HealthReport } from '../metrics/http-server.js';
import type { BackupMetrics, MetricsSeed } from '../metrics/metrics.js';
import type { BackupResult } from '../model/backup-result.js';
import { formatDuration } from '../model/human-units.js';
import { databaseStatus, jobTarget, type DatabaseStatus } from './status.js';
import { walMetricsOf } from './wal-status.js';

/** What /healthz knows of one job: its newest good backup and how its last run went. */
interface JobHealth {
  lastGoodAt: Date | undefined;
  lastRunOk: boolean | undefined;
}

/** Where the daemon's scheduler is, for /healthz. */
export type SchedulerState = 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * The daemon's health, seeded from storage at start, then updated by each finished run:
 * - liveness (/healthz, {@link liveness}): ok while the scheduler runs (also while it lets a
 *   running backup finish after SIGTERM), whatever the backups look like, so a probe restarts a
 *   stuck daemon and never one that merely waits for its first run;
 * - freshness (/readyz, {@link report}): ok when every job's newest good backup is within its
 *   BACKUP_RPO and its last run succeeded.
 */
export class DaemonHealth {
  private readonly health: Map<string, JobHealth>;
  private readonly startedAt = Date.now();

  constructor(private readonly jobs: readonly JobConfig[]) {
    this.health = new Map(jobs.map((j) => [j.name, { lastGoodAt: undefined, lastRunOk: undefined }]));
  }

  /** The /healthz report: ok while the scheduler is running or stopping gracefully. */
  liveness(state: SchedulerState, now: number = Date.now()): HealthReport {
    return {
      ok: state === 'running' || state === 'stopping',
      detail: { scheduler: state, jobs: this.jobs.map((j) => j.name), uptimeSeconds: Math.round((now - this.startedAt) / 1000) },
    };
  }

  /** Take the job's state from its status (catalog and last-run record). */
  seed(job: JobConfig, status: DatabaseStatus): void {
    const h = this.of(job);
    h.lastGoodAt = status.newestGood ? new Date(status.newestGood.time) : undefined;
    const run = lastRealRun(status);
    // As `pgbak status`: a good backup is never proof that a later run succeeded (a clock that was ahead).
    if (run) h.lastRunOk = run.status === 'ok';
  }

  /** A run of the job finished with `result`. */
  recordRun(job: JobConfig, result: BackupResult): void {
    const h = this.of(job);
    if (result.status !== 'dry-run') h.lastRunOk = result.status === 'ok';
    if (result.status === 'ok') h.lastGoodAt = new Date(result.startedAt);
  }

  /** The /readyz report at `now`: ok when every job's backups are fresh, else the problems of each. */
  report(now: number = Date.now()): HealthReport {
    const detail = this.jobs.map((job) => {
      const h = this.of(job);
      const rpo = job.health.rpoMs;
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

  private of(job: JobConfig): JobHealth {
    return this.health.get(job.name)!;
  }
}

/** Seed the gauges and the health state from the catalog and last-run records of every job. */
export async function seedFromStorage(
  jobs: readonly JobConfig[],
  metrics: BackupMetrics,
  health: DaemonHealth,
  logger: Logger,
): Promise<void> {
  const seeds: MetricsSeed[] = [];
  for (const job of jobs) {
    try {
      const s = await databaseStatus(jobTarget(job));
      health.seed(job, s);
      seeds.push(metricsSeed(job, s));
      for (const problem of [...s.warnings, ...s.reasons.filter((r) => r.startsWith('cannot read'))])
        logger.warn(problem, { job: job.name });
    } catch (err) {
      logger.warn(`cannot read the backup history of job ${job.name}: ${messageOf(err)}`);
    }
  }
  metrics.setFromState(seeds);
  // Every configured job has its series from the start: a job that never ran (or whose history
  // cannot be read) shows last success 0 = never, so BackupMissing fires instead of seeing nothing.
  metrics.declareJobs(jobs.map((job) => ({ job: job.name, database: job.database })));
}

function metricsSeed(job: JobConfig, s: DatabaseStatus): MetricsSeed {
  const run = lastRealRun(s);
  const test = s.lastRestoreTest;
  return {
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
    wal: s.wal ? walMetricsOf(s.wal) : undefined,
  };
}

/** The job's last run, unless it was a dry run. */
function lastRealRun(s: DatabaseStatus): NonNullable<DatabaseStatus['lastRun']> | undefined {
  return s.lastRun && s.lastRun.status !== 'dry-run' ? s.lastRun : undefined;
}
