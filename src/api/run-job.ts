import type { JobConfig } from '../config/job.js';
import type { Logger } from '../logging/logger.js';
import { messageOf } from '../errors/error-message.js';
import type { BackupResult } from '../model/backup-result.js';
import { prune } from '../retention/prune.js';
import { pruneWal } from './prune-wal.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import { backup, type BackupProgress } from './backup.js';
import { reportRun, reportStart } from './report-run.js';
import { uploadBackup } from './upload-backup.js';
import { restoreTestAfterBackup } from './verify.js';

/** Options of {@link runJob}. */
export interface RunJobOptions {
  readonly logger: Logger;
  /** A stop request: the backup stops and cleans up; retention is then skipped. */
  readonly signal?: AbortSignal | undefined;
  /** false: --no-prune (default true). */
  readonly prune?: boolean | undefined;
  /** false: --no-upload, keep the backup and every later step off the bucket (default true). */
  readonly upload?: boolean | undefined;
  /** false: --no-encrypt (default true). */
  readonly encrypt?: boolean | undefined;
  readonly onProgress?: ((p: BackupProgress) => void) | undefined;
  /** Called once the backup itself is over, before the steps after it (the CLI ends its progress bar). */
  readonly onBackupDone?: ((result: BackupResult) => void) | undefined;
  /**
   * The partial result of an earlier run whose upload failed: upload that backup (no new dump,
   * no start ping), then the same steps as after a backup. The daemon's retry.
   */
  readonly resume?: BackupResult | undefined;
  /** The job's storage (default: opened here once for the run and released at its end). */
  readonly storage?: JobStorage | undefined;
}

/**
 * One run of a job, as `pgbak backup` and the daemon make it: the start ping, the backup (or, with
 * `resume`, the upload of a partial run's backup), then {@link finishRun}. Returns the BackupResult
 * of every outcome; a failure is a failed result, not a throw.
 */
export async function runJob(job: JobConfig, options: RunJobOptions): Promise<BackupResult> {
  const { logger, signal } = options;
  // Not opened with the signal: the report of an interrupted run must still reach the bucket.
  await using owned = options.storage ? undefined : openStorage(options.upload === false ? offBucket(job) : job);
  const storage = options.storage ?? owned!;
  let result: BackupResult;
  if (options.resume) {
    // The upload and the backup open their own storage, bound to the stop signal (every S3 request
    // aborts on Ctrl-C); the run's storage above is not, so the report of a stopped run still lands.
    result = await uploadBackup({ job, name: options.resume.name!, logger, signal });
  } else {
    await reportStart({ job, logger });
    result = await backup({
      job,
      logger,
      signal,
      upload: options.upload !== false,
      encrypt: options.encrypt !== false,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
  }
  options.onBackupDone?.(result);
  return finishRun(job, result, { logger, signal, prune: options.prune !== false, storage });
}

/** Options of {@link finishRun}. */
export interface FinishRunOptions {
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
  /** false: --no-prune. */
  readonly prune: boolean;
  /** The run's storage (without the bucket when the run kept off it). */
  readonly storage: JobStorage;
}

/**
 * What follows a backup: with BACKUP_VERIFY=restore-test, a restore test of the new backup (the one
 * exception to the rule below: a backup that fails it makes the run fail, exit 14 — or 9 when a
 * copy differs from its manifest — and is not followed by retention); retention after a
 * successful backup (never after a failed or partial one), then the report of every run but a
 * dry run (size check, notifications, metrics textfile, last-run record; see reportRun). Other
 * problems here are warnings: they never turn a good backup into a failure.
 */
export async function finishRun(job: JobConfig, backupResult: BackupResult, options: FinishRunOptions): Promise<BackupResult> {
  const { logger, signal, storage } = options;
  // A run told to keep off the bucket (--no-upload) keeps every later step off it too.
  const target = backupResult.upload === false ? offBucket(job) : job;
  let result = await restoreTestAfterBackup({ job: target, result: backupResult, logger, signal });
  if (result.status === 'ok' && options.prune && target.backup.prune && !signal?.aborted) {
    result = { ...result, warnings: [...result.warnings, ...(await pruneAfterRun(target, result, logger, storage))] };
  }
  if (result.status !== 'dry-run') result = await reportRun({ job: target, result, logger, storage });
  return result;
}

/** Retention after a good run; its problems come back as warnings. */
async function pruneAfterRun(job: JobConfig, result: BackupResult, logger: Logger, storage: JobStorage): Promise<string[]> {
  try {
    // Never the backup this run just made, and only backups of this run's server.
    const pruned = await prune({
      job,
      local: storage.local,
      remote: storage.remote,
      logger,
      protect: result.name ? [result.name] : [],
      systemIdentifier: result.systemIdentifier,
    });
    const wal = await pruneWal(job, storage, { dryRun: false, now: new Date(), logger });
    const errors = [...pruned.errors, ...(wal?.errors ?? [])];
    const out = [...pruned.warnings, ...(wal?.warnings ?? []), ...errors.map((e) => `prune: ${e}`)];
    // Each further target (STORAGE_2_*) on its own.
    for (const t of storage.extra ?? []) {
      const r = await prune({
        job,
        local: t.backend,
        logger,
        protect: result.name ? [result.name] : [],
        systemIdentifier: result.systemIdentifier,
      });
      out.push(...r.warnings, ...r.errors.map((e) => `prune ${t.name}: ${e}`));
    }
    return out;
  } catch (err) {
    logger.warn('prune failed; backups were left in place', { error: messageOf(err) });
    return [`prune failed: ${messageOf(err)}`];
  }
}

/** The job without its bucket. */
function offBucket(job: JobConfig): JobConfig {
  return { ...job, s3: undefined, extraTargets: [] };
}
