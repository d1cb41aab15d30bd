import { Counter, Gauge, Registry } from 'prom-client';
import type { BackupResult } from '../model/backup-result.js';

/**
 * Metric names are part of pgbak's interface: dashboards and alert rules
 * (`monitoring/alerts.yml`) depend on them. Never rename one.
 */
export const METRIC_NAMES = {
  lastSuccess: 'pgbak_backup_last_success_timestamp_seconds',
  lastRun: 'pgbak_backup_last_run_timestamp_seconds',
  lastStatus: 'pgbak_backup_last_status',
  lastDuration: 'pgbak_backup_last_duration_seconds',
  lastSize: 'pgbak_backup_last_size_bytes',
  sizeAnomaly: 'pgbak_backup_size_anomaly',
  restoreTestLastSuccess: 'pgbak_restore_test_last_success_timestamp_seconds',
  restoreTestLastDuration: 'pgbak_restore_test_last_duration_seconds',
  runsTotal: 'pgbak_backup_runs_total',
  walLastArchived: 'pgbak_wal_last_archived_timestamp_seconds',
  walRpo: 'pgbak_wal_rpo_seconds',
  walArchiveFailures: 'pgbak_wal_archive_failures_total',
  walLastFailure: 'pgbak_wal_archive_last_failure_timestamp_seconds',
  basebackupLastSuccess: 'pgbak_basebackup_last_success_timestamp_seconds',
} as const;

/** The per-database gauges, keyed like {@link MetricsSeed}'s fields. */
export type GaugeKey = Exclude<keyof typeof METRIC_NAMES, 'runsTotal' | 'walArchiveFailures'>;

const LABELS = ['job', 'database'] as const;
/** The outcomes `pgbak_backup_runs_total` counts (a dry run is not recorded). */
const RUN_STATUSES = ['ok', 'partial', 'failed'] as const;
type Labels = { job: string; database: string };

/**
 * Known state of one job/database, to seed the gauges when a process starts (the daemon from
 * the catalog, a CLI run from the previous textfile). Every field but the labels is optional:
 * a missing one leaves its gauge untouched. Timestamps are Dates or ISO strings.
 */
export interface MetricsSeed {
  readonly job: string;
  readonly database: string;
  readonly lastSuccessAt?: Date | string | undefined;
  readonly lastRunAt?: Date | string | undefined;
  readonly lastStatus?: 'ok' | 'failed' | undefined;
  readonly lastDurationMs?: number | undefined;
  readonly lastSizeBytes?: number | undefined;
  readonly sizeAnomaly?: boolean | undefined;
  readonly restoreTestLastSuccessAt?: Date | string | undefined;
  readonly restoreTestLastDurationMs?: number | undefined;
  /** Point-in-time recovery (a job whose storage holds a WAL archive): see {@link WalMetricsState}. */
  readonly wal?: WalMetricsState | undefined;
}

/**
 * The WAL archive of one job, as the daemon reads it from storage (and `pgbak basebackup` for
 * METRICS_TEXTFILE). Nulls are "none known": the timestamps are then exported as 0 (never), so
 * the stale alert fires for an archive that never received a segment.
 */
export interface WalMetricsState {
  /** When the newest WAL segment was stored (the storage's time). */
  readonly lastArchivedAt: Date | string | null;
  /** WAL_RPO in ms. */
  readonly rpoMs: number;
  /** wal-push failures recorded so far (see wal/wal-push-failures.ts). */
  readonly failures: number;
  readonly lastFailureAt: Date | string | null;
  /** When the newest base backup's manifest was written. */
  readonly basebackupLastSuccessAt: Date | string | null;
}

/** One restore test, for {@link BackupMetrics.recordRestoreTest}. */
export interface RestoreTestRecord {
  readonly job: string;
  readonly database: string;
  readonly ok: boolean;
  readonly durationMs: number;
  /** When the test finished. */
  readonly at: Date | string;
}

export interface BackupMetricsOptions {
  /**
   * Register `pgbak_backup_runs_total{job,database,status}`. Only meaningful in a long-running
   * process (the daemon): a CLI run's counter would restart at 1 each time. Default false.
   */
  readonly countRuns?: boolean;
}

function seconds(at: Date | string): number | undefined {
  const ms = at instanceof Date ? at.getTime() : Date.parse(at);
  return Number.isFinite(ms) ? ms / 1000 : undefined;
}

/**
 * pgbak's Prometheus metrics in a dedicated prom-client Registry (no default process metrics,
 * nothing from other libraries). Labels: `job` and `database`; the run counter also `status`.
 *
 * Semantics:
 * - `last_status` is 1 only for an `ok` run; `partial` (a copy failed) and `failed` are 0.
 * - `last_success_timestamp_seconds` moves only on `ok` runs (time the run finished). When a run
 *   is recorded and no success is known for its job/database, it is set to 0, so that
 *   "no successful backup for 12 h" fires for a database that never had one instead of the
 *   series being absent.
 * - size and anomaly are set only by runs that produced an artifact (`sizeBytes` present).
 * - dry runs are not recorded.
 */
export class BackupMetrics {
  /** The dedicated registry; serve it or render it with {@link text}. */
  readonly registry = new Registry();
  private readonly gauges: Record<GaugeKey, Gauge<'job' | 'database'>>;
  private readonly runs: Counter<'job' | 'database' | 'status'> | undefined;
  /** `pgbak_wal_archive_failures_total`: a counter set from the recorded count (see {@link recordWal}). */
  private readonly walFailures: Counter<'job' | 'database'>;
  private readonly walFailureCounts = new Map<string, number>();
  /** job/database pairs with a known last success (seeded or recorded). */
  private readonly knownSuccess = new Set<string>();
  private readonly knownRestoreSuccess = new Set<string>();
  /** job/database pairs with a known last run. */
  private readonly knownRun = new Set<string>();

  constructor(options: BackupMetricsOptions = {}) {
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: LABELS, registers: [this.registry] });
    this.gauges = {
      lastSuccess: gauge(METRIC_NAMES.lastSuccess, 'Unix time the last successful backup finished (0: none known)'),
      lastRun: gauge(METRIC_NAMES.lastRun, 'Unix time the last backup run finished, whatever its outcome'),
      lastStatus: gauge(METRIC_NAMES.lastStatus, 'Outcome of the last backup run: 1 ok, 0 failed or partial'),
      lastDuration: gauge(METRIC_NAMES.lastDuration, 'Duration of the last backup run in seconds'),
      lastSize: gauge(METRIC_NAMES.lastSize, 'Size in bytes of the artifact stored by the last run that produced one'),
      sizeAnomaly: gauge(METRIC_NAMES.sizeAnomaly, '1 when the last backup size is outside the tolerance of the recent median'),
      restoreTestLastSuccess: gauge(
        METRIC_NAMES.restoreTestLastSuccess,
        'Unix time the last successful restore test finished (0: none known)',
      ),
      restoreTestLastDuration: gauge(METRIC_NAMES.restoreTestLastDuration, 'Duration of the last restore test in seconds'),
      walLastArchived: gauge(
        METRIC_NAMES.walLastArchived,
        'Unix time the newest WAL segment was stored in the archive (0: none); compare with pgbak_wal_rpo_seconds',
      ),
      walRpo: gauge(METRIC_NAMES.walRpo, 'WAL_RPO in seconds: the newest archived WAL segment must be younger'),
      walLastFailure: gauge(METRIC_NAMES.walLastFailure, 'Unix time of the last failed pgbak wal-push (0: none recorded)'),
      basebackupLastSuccess: gauge(
        METRIC_NAMES.basebackupLastSuccess,
        'Unix time the newest base backup was completed (its manifest written; 0: none)',
      ),
    };
    this.walFailures = new Counter({
      name: METRIC_NAMES.walArchiveFailures,
      help: 'Failed pgbak wal-push calls (archive_command) recorded in the WAL archive and BACKUP_DIR',
      labelNames: LABELS,
      registers: [this.registry],
    });
    this.runs = options.countRuns
      ? new Counter({
          name: METRIC_NAMES.runsTotal,
          help: 'Backup runs since the daemon started, by outcome',
          labelNames: ['job', 'database', 'status'] as const,
          registers: [this.registry],
        })
      : undefined;
  }

  /** Prometheus content type of {@link text}, for an HTTP response. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Update the gauges (and the run counter) after a backup run. Dry runs are ignored. The size
   * anomaly gauge follows `result.sizeAnomaly` unless `options.anomaly` says otherwise.
   */
  recordRun(result: BackupResult, options: { anomaly?: boolean } = {}): void {
    if (result.status === 'dry-run') return;
    const labels: Labels = { job: result.job, database: result.database };
    const key = keyOf(labels);
    const finished = seconds(result.finishedAt) ?? Date.now() / 1000;
    const ok = result.status === 'ok';
    this.gauges.lastRun.set(labels, finished);
    this.knownRun.add(key);
    this.gauges.lastStatus.set(labels, ok ? 1 : 0);
    this.gauges.lastDuration.set(labels, result.durationMs / 1000);
    if (ok) {
      this.gauges.lastSuccess.set(labels, finished);
      this.knownSuccess.add(key);
    } else if (!this.knownSuccess.has(key)) {
      this.gauges.lastSuccess.set(labels, 0);
      this.knownSuccess.add(key);
    }
    if (result.sizeBytes !== undefined) {
      this.gauges.lastSize.set(labels, result.sizeBytes);
      this.gauges.sizeAnomaly.set(labels, (options.anomaly ?? result.sizeAnomaly?.anomalous === true) ? 1 : 0);
    }
    this.runs?.inc({ ...labels, status: result.status });
  }

  /** Update the restore-test gauges after a restore test. */
  recordRestoreTest(test: RestoreTestRecord): void {
    const labels: Labels = { job: test.job, database: test.database };
    const key = keyOf(labels);
    this.gauges.restoreTestLastDuration.set(labels, test.durationMs / 1000);
    if (test.ok) {
      this.gauges.restoreTestLastSuccess.set(labels, seconds(test.at) ?? Date.now() / 1000);
      this.knownRestoreSuccess.add(key);
    } else if (!this.knownRestoreSuccess.has(key)) {
      this.gauges.restoreTestLastSuccess.set(labels, 0);
      this.knownRestoreSuccess.add(key);
    }
  }

  /**
   * Set the WAL series of a job whose storage holds a WAL archive: the daemon calls it at start,
   * periodically and after its runs; `pgbak basebackup` for METRICS_TEXTFILE.
   */
  recordWal(labels: { job: string; database: string }, wal: WalMetricsState): void {
    const l: Labels = { job: labels.job, database: labels.database };
    const at = (v: Date | string | null) => (v === null ? 0 : (seconds(v) ?? 0));
    this.gauges.walLastArchived.set(l, at(wal.lastArchivedAt));
    this.gauges.walRpo.set(l, wal.rpoMs / 1000);
    this.gauges.walLastFailure.set(l, at(wal.lastFailureAt));
    this.gauges.basebackupLastSuccess.set(l, at(wal.basebackupLastSuccessAt));
    // A counter has no set: add the difference; a count that went down (its record was removed) restarts the series.
    const key = keyOf(l);
    const previous = this.walFailureCounts.get(key);
    if (previous === undefined || wal.failures < previous) {
      this.walFailures.remove(l);
      this.walFailures.inc(l, wal.failures);
    } else if (wal.failures > previous) this.walFailures.inc(l, wal.failures - previous);
    this.walFailureCounts.set(key, wal.failures);
  }

  /**
   * Seed the gauges from known history when a process starts: the daemon from the catalog, a CLI
   * run from the previous textfile (see `readMetricsTextfile`). Fields left undefined are not
   * touched. Call before recording runs.
   */
  setFromState(seeds: readonly MetricsSeed[]): void {
    for (const s of seeds) {
      const labels: Labels = { job: s.job, database: s.database };
      const key = keyOf(labels);
      const at = (v: Date | string | undefined) => (v === undefined ? undefined : seconds(v));
      const lastSuccess = at(s.lastSuccessAt);
      if (lastSuccess !== undefined) {
        this.gauges.lastSuccess.set(labels, lastSuccess);
        this.knownSuccess.add(key);
      }
      const lastRun = at(s.lastRunAt);
      if (lastRun !== undefined) {
        this.gauges.lastRun.set(labels, lastRun);
        this.knownRun.add(key);
      }
      if (s.lastStatus !== undefined) this.gauges.lastStatus.set(labels, s.lastStatus === 'ok' ? 1 : 0);
      if (s.lastDurationMs !== undefined) this.gauges.lastDuration.set(labels, s.lastDurationMs / 1000);
      if (s.lastSizeBytes !== undefined) this.gauges.lastSize.set(labels, s.lastSizeBytes);
      if (s.sizeAnomaly !== undefined) this.gauges.sizeAnomaly.set(labels, s.sizeAnomaly ? 1 : 0);
      const restore = at(s.restoreTestLastSuccessAt);
      if (restore !== undefined) {
        this.gauges.restoreTestLastSuccess.set(labels, restore);
        this.knownRestoreSuccess.add(key);
      }
      if (s.restoreTestLastDurationMs !== undefined) {
        this.gauges.restoreTestLastDuration.set(labels, s.restoreTestLastDurationMs / 1000);
      }
      if (s.wal) this.recordWal(labels, s.wal);
    }
  }

  /**
   * Give every configured job/database its series from the start (call after
   * {@link setFromState}): `last_success_timestamp_seconds` and `last_run_timestamp_seconds` 0
   * (never) where nothing is known, and the run counter 0 for each outcome. So `BackupMissing`
   * fires for a job that never succeeded instead of its series being absent. `last_status` and
   * the restore-test gauges stay absent until known: 0 there would mean "failed".
   */
  declareJobs(jobs: readonly { readonly job: string; readonly database: string }[]): void {
    for (const { job, database } of jobs) {
      const labels: Labels = { job, database };
      const key = keyOf(labels);
      if (!this.knownSuccess.has(key)) {
        this.gauges.lastSuccess.set(labels, 0);
        this.knownSuccess.add(key);
      }
      if (!this.knownRun.has(key)) {
        this.gauges.lastRun.set(labels, 0);
        this.knownRun.add(key);
      }
      for (const status of RUN_STATUSES) this.runs?.inc({ ...labels, status }, 0);
    }
  }

  /** The metrics in the Prometheus text exposition format (no timestamps). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

function keyOf(labels: Labels): string {
  return `${labels.job}\u0000${labels.database}`;
}
