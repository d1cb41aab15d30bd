import type { JobConfig } from '../config/job.js';
import type { Logger } from '../logging/logger.js';
import { prune } from '../retention/prune.js';
import { createStorage } from '../storage/index.js';
import type { BackupResult } from '../model/backup-result.js';
import { reportRun } from './report-run.js';
import { restoreTestAfterBackup } from './verify.js';

export interface AfterBackupOptions {
  readonly job: JobConfig;
  readonly result: BackupResult;
  readonly logger: Logger;
  /** false: --no-prune. */
  readonly prune: boolean;
  readonly signal?: AbortSignal;
}

/**
 * What follows a run: with BACKUP_VERIFY=restore-test, a restore test of the new backup (the one
 * exception to the rule below: a backup that fails it makes the run fail, exit 14 — or 9 when a
 * copy differs from its manifest — and is not followed by retention); retention after a
 * successful backup (never after a failed or partial one), then the report of every run but a
 * dry run (size check, notifications, metrics textfile, last-run record; see reportRun). Other
 * problems here are warnings: they never turn a good backup into a failure.
 */
export async function runAfterBackup(options: AfterBackupOptions): Promise<BackupResult> {
  const { logger } = options;
  // A run told to keep off the bucket (--no-upload) keeps every later step off it too.
  const job = options.result.upload === false ? { ...options.job, s3: undefined } : options.job;
  let result = await restoreTestAfterBackup({ job, result: options.result, logger, signal: options.signal });
  const warnings = [...result.warnings];
  if (result.status === 'ok' && options.prune && job.settings.BACKUP_PRUNE && !options.signal?.aborted) {
    try {
      const storage = createStorage(job);
      // Never the backup this run just made, and only backups of this run's server.
      const pruned = await prune({
        job,
        local: storage.local,
        remote: storage.remote,
        logger,
        protect: result.name ? [result.name] : [],
        systemIdentifier: result.systemIdentifier,
      });
      for (const e of pruned.errors) warnings.push(`prune: ${e}`);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      logger.warn('prune failed; backups were left in place', { error: message });
      warnings.push(`prune failed: ${message}`);
    }
  }
  result = { ...result, warnings };
  if (result.status !== 'dry-run') result = await reportRun({ job, result, logger });
  return result;
}
