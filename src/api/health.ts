import type { JobConfig } from '../config/job.js';
import { messageOf } from '../errors/error-message.js';
import type { Logger } from '../logging/logger.js';
import type { HealthReport } from '../metrics/http-server.js';
import type { BackupMetrics, MetricsSeed } from '../metrics/metrics.js';
import type { BackupResult } from '../model/backup-result.js';
import { formatDuration } from '../model/human-units.js';
import { expandServerJobs } from './server-jobs.js';
import { databaseStatus, jobTarget, type DatabaseStatus } from './status.js';
import { walMetricsOf } from './wal-status.js';

/** What /healthz knows of one job: its newest good backup and how its last run went. */
interface JobHealth {
  lastGoodAt: Date | undefined;
  lastRunOk: boolean | undefined;
}

/** Where the daemon's scheduler is, for /healthz. */
export type SchedulerState = 'starting' | 'running' | 'stopping' | 'stopped';

/** One database's line in /readyz: its newest good backup's age against BACKUP_RPO, its last run. */
export interface ReadinessLine {
  readonly database: string;
  readonly ok: boolean;
  readonly newestGoodAgeSeconds: number | null;
  readonly lastRunOk: boolean | null;
  readonly problems: string[];
}

/** One job's entry in /readyz; a whole-server job (BACKUP_DATABASES) has a line a database. */
export interface JobReadiness extends ReadinessLine {
  readonly job: string;
  readonly databases?: readonly ReadinessLine[];
}

/**
 * The daemon's health, seeded from storage at start, then updated by each finished run:
 * - liveness (/healthz, {@link liveness}): ok while the scheduler runs (also while it lets a
 *   running backup finish after SIGTERM), whatever the backups look like, so a probe restarts a
 *   stuck daemon and never one that merely waits for its first run;
 * - freshness (/readyz, {@link report}): ok when every job's newest good backup is within its
 *   BACKUP_RPO and its last run succeeded. A whole-server job (BACKUP_DATABASES) is judged per
 *   database: each has its line, and the job is ready when every one is (the databases of its last
 *   run; before one, those on the server and in storage).
 */
export class DaemonHealth {
  private readonly health: Map<string, JobHealth>;
  /** A whole-server job's databases: job name → database → health. */
  private readonly databases = new Map<string, Map<string, JobHealth>>();
  private readonly startedAt = Date.now();

  constructor(private readonly jobs: readonly JobConfig[]) {
    this.health = new Map(jobs.map((j) => [j.name, { lastGoodAt: undefined, lastRunOk: undefined }]));
    for (const j of jobs) if (j.backup.databases) this.databases.set(j.name, new Map());
  }

  /** The /healthz report: ok while the scheduler is running or stopping gracefully. */
  liveness(state: SchedulerState, now: number = Date.now()): HealthReport {
    return {
      ok: state === 'running' || state === 'stopping',
      detail: { scheduler: state, jobs: this.jobs.map((j) => j.name), uptimeSeconds: Math.round((now - this.startedAt) / 1000) },
    };
  }

  /** Take the job's state (a whole-server job's: `database`'s) from its status (catalog and last-run record). */
  seed(job: JobConfig, status: DatabaseStatus, database?: string): void {
    const h = database === undefined ? this.of(job) : this.ofDatabase(job, database);
    h.lastGoodAt = status.newestGood ? new Date(status.newestGood.time) : undefined;
    const run = lastRealRun(status);
    // As `pgbak status`: a good backup is never proof that a later run succeeded (a clock that was ahead).
    if (run) h.lastRunOk = run.status === 'ok';
  }

  /** A run of the job finished with `result`; a whole-server run with each database's result too. */
  recordRun(job: JobConfig, result: BackupResult, databases?: readonly BackupResult[]): void {
    record(this.of(job), result);
    const known = this.databases.get(job.name);
    if (!known || !databases || (databases.length === 0 && result.status === 'failed')) return;
    // The run's databases are the server's now: one dropped since is no longer judged.
    for (const d of [...known.keys()]) if (!databases.some((r) => r.database === d)) known.delete(d);
    for (const r of databases) record(this.ofDatabase(job, r.database), r);
  }

  /** The /readyz report at `now`: ok when every job's backups are fresh, else the problems of each. */
  report(now: number = Date.now()): HealthReport {
    const detail: JobReadiness[] = this.jobs.map((job) => {
      const own = readiness(job.database, this.of(job), job.health.rpoMs, now);
      const known = this.databases.get(job.name);
      if (!known) return { job: job.name, ...own };
      const lines = [...known.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([database, h]) => readiness(database, h, job.health.rpoMs, now));
      const bad = lines.filter((l) => !l.ok);
      const problems = [
        ...(lines.length === 0 ? ['no database backed up yet'] : []),
        ...(bad.length ? [`${bad.length} of ${lines.length} databases not ready: ${bad.map((l) => l.database).join(', ')}`] : []),
        ...(own.lastRunOk === false && bad.length === 0 ? ['last run failed'] : []),
      ];
      const ages = lines.map((l) => l.newestGoodAgeSeconds);
      return {
        job: job.name,
        database: job.database,
        ok: problems.length === 0,
        newestGoodAgeSeconds: ages.length === 0 || ages.includes(null) ? null : Math.max(...(ages as number[])),
        lastRunOk: own.lastRunOk,
        problems,
        databases: lines,
      };
    });
    return { ok: detail.every((d) => d.ok), detail };
  }

  private of(job: JobConfig): JobHealth {
    return this.health.get(job.name)!;
  }

  private ofDatabase(job: JobConfig, database: string): JobHealth {
    const known = this.databases.get(job.name)!;
    let h = known.get(database);
    if (!h) known.set(database, (h = { lastGoodAt: undefined, lastRunOk: undefined }));
    return h;
  }
}

function record(h: JobHealth, result: BackupResult): void {
  if (result.status !== 'dry-run') h.lastRunOk = result.status === 'ok';
  if (result.status === 'ok') h.lastGoodAt = new Date(result.startedAt);
}

/** One database's readiness: a good backup younger than BACKUP_RPO, and a last run that did not fail. */
function readiness(database: string, h: JobHealth, rpo: number, now: number): ReadinessLine {
  const ageMs = h.lastGoodAt ? now - h.lastGoodAt.getTime() : undefined;
  const problems: string[] = [];
  if (ageMs === undefined) problems.push('no good backup');
  else if (ageMs >= rpo) problems.push(`newest good backup is ${formatDuration(ageMs)} old (BACKUP_RPO ${formatDuration(rpo)})`);
  if (h.lastRunOk === false) problems.push('last run failed');
  return {
    database,
    ok: problems.length === 0,
    newestGoodAgeSeconds: ageMs === undefined ? null : Math.round(ageMs / 1000),
    lastRunOk: h.lastRunOk ?? null,
    problems,
  };
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
    // A whole-server job (BACKUP_DATABASES): each database on the server and in storage, as `pgbak status` sees them.
    const units = job.backup.databases ? await expandServerJobs([job], { discover: true, logger }) : [job];
    for (const unit of units) {
      try {
        const s = await databaseStatus(jobTarget(unit));
        health.seed(job, s, unit === job ? undefined : unit.database);
        seeds.push(metricsSeed(unit, s));
        for (const problem of [...s.warnings, ...s.reasons.filter((r) => r.startsWith('cannot read'))])
          logger.warn(problem, { job: unit.name });
      } catch (err) {
        logger.warn(`cannot read the backup history of job ${unit.name}: ${messageOf(err)}`);
      }
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
