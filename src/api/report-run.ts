import { hostname } from 'node:os';
import { listBackups, type CatalogEntry, type ManifestReads } from '../catalog/catalog.js';
import { lastRunRecord, writeLastRun } from '../catalog/last-run.js';
import type { JobConfig } from '../config/job.js';
import type { Logger } from '../logging/logger.js';
import { notifyRun, pingStart, type NotifyOutcome, type RetryPolicy } from '../notify/notifier.js';
import { judgeSize, SIZE_HISTORY_WINDOW } from '../catalog/size-trend.js';
import type { SizeJudgement } from '../model/size-judgement.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import { messageOf } from '../errors/error-message.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import type { BackupResult } from '../model/backup-result.js';

/**
 * Reporting after a run: size check, notifications, the metrics textfile and the last-run record.
 * Every step is best effort: a failure here becomes a warning of the run, never a failed backup,
 * and never hides a failed one.
 */

/** The text that starts the warning of a size anomaly (people read it; code reads `sizeAnomaly`). */
const SIZE_ANOMALY_WARNING = 'size anomaly: ';

/** Options of {@link reportRun}. */
export interface ReportRunOptions {
  readonly job: JobConfig;
  readonly result: BackupResult;
  readonly logger: Logger;
  /**
   * This database's catalog entries, newest first (this run's own backup may be among them; it is
   * left out of the size history, as are entries that are not good). Default: read from the
   * catalog (BACKUP_DIR and the bucket).
   */
  readonly previousGood?: readonly CatalogEntry[] | undefined;
  /** The clock (default: now). */
  readonly now?: () => Date;
  /** Notification retry policy (tests make it impatient). */
  readonly notifyRetry?: Partial<RetryPolicy> | undefined;
  /** The run's storage (default: opened and released here). */
  readonly storage?: JobStorage | undefined;
  /** The run's manifests already read (by retention before it): catalog.ts. */
  readonly reads?: ManifestReads | undefined;
}

/** Where a job stores backups, for people: `/var/backups/db + s3://bucket/backups/`. */
export function destinationOf(job: Pick<JobConfig, 'backupDir' | 's3'>): string {
  return job.s3 ? `${job.backupDir} + s3://${job.s3.bucket}/${job.s3.prefix}` : job.backupDir;
}

/**
 * Report a finished run (dry runs are returned unchanged):
 * 1. size check against the median of the previous up-to-7 good backups of the database
 *    (`judgeSize`, BACKUP_SIZE_TOLERANCE); an anomaly is logged, becomes a warning and sets
 *    `sizeAnomaly` of the result;
 * 2. METRICS_TEXTFILE, when set, is updated with the run;
 * 3. notifications (e-mail, webhook, ping) via `notifyRun`; an undelivered one becomes a warning;
 * 4. the last-run record is written to BACKUP_DIR and, when storage is configured, the bucket.
 * Returns the result with the warnings of these steps added. Never throws.
 */
export async function reportRun(options: ReportRunOptions): Promise<BackupResult> {
  const { job } = options;
  if (options.result.status === 'dry-run') return options.result;
  const logger = options.logger.child({ job: job.name, database: job.database });
  const warnings = [...options.result.warnings];
  const report: Report = {
    options,
    logger,
    now: options.now ?? (() => new Date()),
    warnings,
    warn: (warning, message, fields = {}) => {
      logger.warn(message, fields);
      warnings.push(warning);
    },
  };
  await using owned = options.storage ? undefined : openStorage(job);
  const storage = options.storage ?? owned!;
  let result = options.result;
  try {
    const previousGood = await history(report, storage);
    const earlier = previousGood.filter(
      (e) => e.state === 'good' && e.name !== result.name && (e.database ?? job.database) === job.database,
    );
    const judgement = checkSize(report, earlier);
    if (judgement?.anomalous) result = { ...result, sizeAnomaly: judgement };
    await writeMetrics(report, result, previousGood);
    await notify(report, result, earlier, judgement);
    await recordLastRun(report, result, storage);
  } catch (err) {
    // Only a bug gets here: every step catches its own failures. Still never fail the run.
    report.warn(`reporting failed: ${messageOf(err)}`, 'reporting failed', { error: messageOf(err) });
  }
  return { ...result, warnings };
}

/** The state of one reportRun: its options, and the warnings its steps add. */
interface Report {
  readonly options: ReportRunOptions;
  readonly logger: Logger;
  readonly now: () => Date;
  readonly warnings: string[];
  warn(warning: string, message: string, fields?: Record<string, unknown>): void;
}

/** 1a. The database's catalog entries, newest first (given, or read from storage). */
async function history(report: Report, storage: JobStorage): Promise<readonly CatalogEntry[]> {
  const { options } = report;
  if (options.previousGood) return options.previousGood;
  // After an unreachable or failing bucket, do not wait on it again for the history.
  const remoteDown = options.result.status === 'partial' || (options.result.error?.code.startsWith('storage') ?? false);
  const read = await readHistory(options.job, storage.local, remoteDown ? undefined : storage.remote, options.reads);
  if (read.problem)
    report.warn(`backup history partly unreadable: ${read.problem}`, 'backup history partly unreadable', { error: read.problem });
  return read.entries;
}

/** 1b. The size check against the earlier good backups; an anomaly becomes a warning. */
function checkSize(report: Report, earlier: readonly CatalogEntry[]): SizeJudgement | undefined {
  const { result, job } = report.options;
  if (result.sizeBytes === undefined) return undefined;
  const sizes = earlier.slice(0, SIZE_HISTORY_WINDOW).map((e) => e.size);
  const judgement = judgeSize(result.sizeBytes, sizes, job.health.sizeTolerance);
  if (judgement.anomalous)
    report.warn(`${SIZE_ANOMALY_WARNING}${judgement.reason}`, `size anomaly: ${judgement.reason}`, { backup: result.name });
  else report.logger.debug('size check', { reason: judgement.reason });
  return judgement;
}

/** 2. The metrics textfile; the restore-test gauges follow the newest passed restore test in the catalog. */
async function writeMetrics(report: Report, result: BackupResult, previousGood: readonly CatalogEntry[]): Promise<void> {
  const { job } = report.options;
  const textfile = job.metrics.textfile;
  if (!textfile) return;
  try {
    const tested = previousGood
      .map((e) => e.verification)
      .filter((v) => v?.kind === 'restore-test' && v.ok)
      .sort((a, b) => Date.parse(b!.verifiedAt) - Date.parse(a!.verifiedAt))[0];
    // prom-client loads only for a job that writes metrics (docs/performance.md, "Memory").
    const { updateMetricsTextfile } = await import('../metrics/textfile.js');
    await updateMetricsTextfile(textfile, (m) => {
      if (tested)
        m.recordRestoreTest({ job: job.name, database: job.database, ok: true, durationMs: tested.durationMs, at: tested.verifiedAt });
      m.recordRun(result);
    });
  } catch (err) {
    report.warn(`metrics not written: ${messageOf(err)}`, 'metrics textfile not written', { path: textfile, error: messageOf(err) });
  }
}

/** 3. Notifications; an undelivered one becomes a warning. */
async function notify(
  report: Report,
  result: BackupResult,
  earlier: readonly CatalogEntry[],
  judgement: SizeJudgement | undefined,
): Promise<void> {
  const { options } = report;
  const newestEarlier = earlier[0];
  const outcomes = await notifyRun({
    result: { ...result, warnings: [...report.warnings] },
    settings: options.job.notify,
    context: {
      host: hostname(),
      lastGoodAgeMs:
        result.status === 'ok' || !newestEarlier ? undefined : Math.max(0, report.now().getTime() - newestEarlier.time.getTime()),
      location: destinationOf(options.job),
      sizeJudgement: judgement,
    },
    logger: report.logger,
    ...(options.notifyRetry ? { retry: options.notifyRetry } : {}),
  });
  for (const o of outcomes) if (!o.ok) report.warnings.push(`${o.channel} notification not delivered: ${o.error ?? 'unknown error'}`);
}

/** 4. The last-run record, with every warning so far, locally and in the bucket. */
async function recordLastRun(report: Report, result: BackupResult, storage: JobStorage): Promise<void> {
  const record = lastRunRecord(report.options.job.filePrefix, { ...result, warnings: [...report.warnings] }, report.now());
  const targets: [string, StorageBackend][] = [[`BACKUP_DIR ${storage.local.location}`, storage.local]];
  if (storage.remote) targets.push([`the bucket ${storage.remote.location}`, storage.remote]);
  for (const e of storage.extra ?? []) targets.push([`target ${e.name} ${e.backend.location}`, e.backend]);
  for (const [where, backend] of targets) {
    try {
      await writeLastRun(backend, record);
    } catch (err) {
      report.warn(`last-run record not written to ${where}: ${messageOf(err)}`, `last-run record not written to ${where}`, {
        error: messageOf(err),
      });
    }
  }
}

/**
 * The start ping (`NOTIFY_PING_URL` + `/start`) before a run, so a dead-man's-switch monitor
 * measures the run and notices one that never finishes. Never throws; undefined without a URL.
 */
export function reportStart(options: { job: JobConfig; logger: Logger; retry?: Partial<RetryPolicy> }): Promise<NotifyOutcome | undefined> {
  const logger = options.logger.child({ job: options.job.name, database: options.job.database });
  return pingStart(options.job.notify.pingUrl, logger, options.retry);
}

/**
 * This job's catalog entries, newest first. When the bucket cannot be read, the local ones are
 * returned with the problem.
 */
async function readHistory(
  job: JobConfig,
  local: StorageBackend,
  remote: StorageBackend | undefined,
  reads: ManifestReads | undefined,
): Promise<{ entries: CatalogEntry[]; problem?: string }> {
  try {
    return { entries: await listBackups({ local, remote, prefix: job.filePrefix, reads }) };
  } catch (err) {
    if (!remote) return { entries: [], problem: messageOf(err) };
    try {
      return { entries: await listBackups({ local, prefix: job.filePrefix, reads }), problem: `bucket: ${messageOf(err)}` };
    } catch (err2) {
      return { entries: [], problem: messageOf(err2) };
    }
  }
}
