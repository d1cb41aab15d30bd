import { offBucket, type JobConfig } from '../config/job.js';
import type { Logger } from '../logging/logger.js';
import { messageOf } from '../errors/error-message.js';
import type { BackupResult } from '../model/backup-result.js';
import { ManifestReads } from '../catalog/catalog.js';
import { prune } from '../retention/prune.js';
import type { JobStorage } from '../storage/job-storage.js';
import { pruneWal } from './prune-wal.js';
import { reportRun } from './report-run.js';
import { restoreTestAfterBackup } from './verify.js';

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
  // Retention and the report list the same catalog: each manifest is read once.
  const reads = new ManifestReads();
  if (result.status === 'ok' && options.prune && target.backup.prune && !signal?.aborted) {
    result = { ...result, warnings: [...result.warnings, ...(await pruneAfterRun(target, result, logger, storage, reads))] };
  }
  if (result.status !== 'dry-run') result = await reportRun({ job: target, result, logger, storage, reads });
  return result;
}

/** Retention after a good run; its problems come back as warnings. */
async function pruneAfterRun(
  job: JobConfig,
  result: BackupResult,
  logger: Logger,
  storage: JobStorage,
  reads: ManifestReads,
): Promise<string[]> {
  try {
    // Never the backup this run just made, and only backups of this run's server.
    const pruned = await prune({
      job,
      local: storage.local,
      remote: storage.remote,
      logger,
      protect: result.name ? [result.name] : [],
      systemIdentifier: result.systemIdentifier,
      reads,
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
        reads,
      });
      out.push(...r.warnings, ...r.errors.map((e) => `prune ${t.name}: ${e}`));
    }
    return out;
  } catch (err) {
    logger.warn('prune failed; backups were left in place', { error: messageOf(err) });
    return [`prune failed: ${messageOf(err)}`];
  }
}
