import { type CatalogEntry, listBackups } from '../catalog/catalog.js';
import { findByName } from '../catalog/find-backup.js';
import { newerRecord, readLastRun } from '../catalog/last-run.js';
import type { JobConfig } from '../config/job.js';
import { IntegrityError, resultError, UsageError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import type { BackupResult } from '../model/backup-result.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import { finishRun } from './finish-run.js';
import { uploadBackup } from './upload-backup.js';

/** Options of {@link upload}. */
export interface UploadOptions {
  readonly job: JobConfig;
  /** These backups (names or file names) … */
  readonly names?: readonly string[] | undefined;
  /** … or every good local backup of the job's database that the bucket lacks. */
  readonly missing?: boolean | undefined;
  /** Say what would be uploaded; upload nothing. */
  readonly dryRun?: boolean | undefined;
  readonly logger?: Logger | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly storage?: JobStorage | undefined;
}

/** One backup's upload. */
export interface UploadItem {
  readonly name: string;
  /** uploaded; already (a good copy was in the bucket: nothing done); would-upload (dry run); failed. */
  readonly status: 'uploaded' | 'already' | 'would-upload' | 'failed';
  readonly sizeBytes: number;
  /** The last run's record was this backup's partial run and now says it finished. */
  readonly completedRun: boolean;
  readonly error?: BackupResult['error'];
}

/** What {@link upload} did, per backup. */
export interface UploadReport {
  readonly job: string;
  readonly database: string;
  readonly dryRun: boolean;
  readonly items: readonly UploadItem[];
}

/**
 * `pgbak upload NAME… | --missing`: finish what a partial run (exit 3) left, by uploading the local
 * copy of a good backup to the bucket — streamed from disk, each file checked against the
 * manifest's size and sha256 on the way, the manifest last (see {@link uploadBackup}). When the
 * backup is the one of the database's last run, that run is completed as the daemon's upload
 * retry does (restore test when configured, then its report: last-run record, notifications,
 * metrics), so `status` no longer says "last run partly failed".
 */
export async function upload(options: UploadOptions): Promise<UploadReport> {
  const { job } = options;
  const logger = options.logger ?? silentLogger;
  const names = options.names ?? [];
  if (names.length > 0 && options.missing) throw new UsageError('give backup NAMEs or --missing, not both');
  if (names.length === 0 && !options.missing) {
    throw new UsageError('upload what? give the NAME of a backup, or --missing', {
      hint: '`pgbak list` shows where each backup is; `pgbak upload --missing --dry-run` shows what the bucket lacks',
    });
  }
  await using storage = openStorage(job, { signal: options.signal, shared: options.storage });
  if (!storage.remote)
    throw new UsageError('no bucket is configured to upload to', { hint: 'set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY' });
  const backends = { local: storage.local, remote: storage.remote };
  const chosen: CatalogEntry[] = [];
  if (options.missing) {
    const entries = await listBackups({ ...backends, prefix: job.filePrefix });
    // Oldest first, so that an interrupted --missing leaves the newest for the next attempt to see.
    chosen.push(...entries.filter((e) => e.locations.local?.state === 'good' && e.locations.remote?.state !== 'good').reverse());
  } else {
    for (const n of names) chosen.push(await findByName(backends, n));
  }
  const items: UploadItem[] = [];
  for (const entry of chosen) {
    const sizeBytes = entry.size;
    if (entry.locations.remote?.state === 'good') {
      items.push({ name: entry.name, status: 'already', sizeBytes, completedRun: false });
      continue;
    }
    const local = entry.locations.local;
    if (local?.state !== 'good') {
      const why = local ? `its local copy is ${local.state}${local.problems[0] ? ` (${local.problems[0]})` : ''}` : 'it has no local copy';
      const error = new IntegrityError(`${entry.name} cannot be uploaded: ${why}`, {
        hint: '`pgbak verify NAME` checks each copy; only a good local copy is uploaded',
      });
      items.push({ name: entry.name, status: 'failed', sizeBytes, completedRun: false, error: resultError(error) });
      continue;
    }
    if (entry.database !== job.database) {
      const error = new UsageError(`${entry.name} is a backup of ${entry.database ?? 'an unknown database'}, not of ${job.database}`, {
        hint: 'choose its job with --job NAME',
      });
      items.push({ name: entry.name, status: 'failed', sizeBytes, completedRun: false, error: resultError(error) });
      continue;
    }
    if (options.dryRun) {
      items.push({ name: entry.name, status: 'would-upload', sizeBytes, completedRun: false });
      continue;
    }
    let result = await uploadBackup({ job, name: entry.name, logger, signal: options.signal, storage });
    let completedRun = false;
    if (result.status === 'ok' && (await lastRunWasPartial(storage, job.filePrefix, entry.name))) {
      result = await finishRun(job, result, { logger, signal: options.signal, prune: false, storage });
      completedRun = true;
    }
    items.push({
      name: entry.name,
      status: result.status === 'ok' ? 'uploaded' : 'failed',
      sizeBytes,
      completedRun,
      ...(result.error ? { error: result.error } : {}),
    });
    if (options.signal?.aborted) break;
  }
  return { job: job.name, database: job.database, dryRun: Boolean(options.dryRun), items };
}

/** The database's newest last-run record is a partial run of `name`. */
async function lastRunWasPartial(storage: JobStorage, prefix: string, name: string): Promise<boolean> {
  let record = await readLastRun(storage.local, prefix).catch(() => undefined);
  if (storage.remote) record = newerRecord(record, await readLastRun(storage.remote, prefix).catch(() => undefined));
  return record?.result.status === 'partial' && record.result.name === name;
}
