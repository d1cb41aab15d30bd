import { offBucket, type JobConfig } from '../config/job.js';
import type { Logger } from '../logging/logger.js';
import type { BackupResult } from '../model/backup-result.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import { commandSilence, SilentEndpoints } from '../storage/silent-endpoints.js';
import { backup, type BackupProgress } from './backup.js';

/** The steps after a backup, and the modules behind them (restore test, retention, notifications). */
type FinishRun = typeof import('./finish-run.js');

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
  /**
   * The endpoints that did not answer in time earlier in this run (a whole-server run shares one
   * among its databases); default: a new one, so a frozen S3 server is waited for once a run.
   */
  readonly silence?: SilentEndpoints | undefined;
}

/**
 * One run of a job, as `pgbak backup` and the daemon make it: the start ping, the backup (or, with
 * `resume`, the upload of a partial run's backup), then {@link finishRun}. Returns the BackupResult
 * of every outcome; a failure is a failed result, not a throw.
 */
export async function runJob(job: JobConfig, options: RunJobOptions): Promise<BackupResult> {
  const { logger, signal } = options;
  // The steps after the backup load while pg_dump runs, when node has little to do: not on the way
  // to pg_dump's start, nor after its end (docs/performance.md, "Start-up of a backup").
  let later: Promise<FinishRun> | undefined;
  const loadLater = () => (later ??= import('./finish-run.js'));
  // Not opened with the signal: the report of an interrupted run must still reach the bucket.
  const silence = options.silence ?? commandSilence() ?? new SilentEndpoints();
  await using owned = options.storage ? undefined : openStorage(options.upload === false ? offBucket(job) : job, { silence });
  const storage = options.storage ?? owned!;
  let result: BackupResult;
  if (options.resume) {
    // The upload and the backup open their own storage, bound to the stop signal (every S3 request
    // aborts on Ctrl-C); the run's storage above is not, so the report of a stopped run still lands.
    const { uploadBackup } = await import('./upload-backup.js');
    result = await uploadBackup({ job, name: options.resume.name!, logger, signal, silence });
  } else {
    // The start ping, when there is one to send (reportStart does nothing without NOTIFY_PING_URL).
    if (job.notify.pingUrl) await (await import('./report-run.js')).reportStart({ job, logger });
    result = await backup({
      job,
      logger,
      signal,
      upload: options.upload !== false,
      encrypt: options.encrypt !== false,
      silence,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      onDumpStarted: () => void loadLater().catch(() => undefined),
    });
  }
  options.onBackupDone?.(result);
  const { finishRun } = await loadLater();
  return finishRun(job, result, { logger, signal, prune: options.prune !== false, storage });
}
