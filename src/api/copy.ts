import { type CatalogEntry, listBackups } from '../catalog/catalog.js';
import { backupUrl } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { NotFoundError, resultError, toAppError, UsageError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import type { BackupResult } from '../model/backup-result.js';
import { openStorage, remoteTargetName, type JobStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { copyBackupFiles } from './upload-backup.js';

/** Options of {@link copy}. */
export interface CopyOptions {
  readonly job: JobConfig;
  /** The target to copy to: `primary` (STORAGE_*) or a further target's name (STORAGE_2_NAME). */
  readonly to: string;
  /** These backups … */
  readonly names?: readonly string[] | undefined;
  /** … or every good backup of the job's database that the target lacks. */
  readonly missing?: boolean | undefined;
  readonly dryRun?: boolean | undefined;
  readonly logger?: Logger | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly storage?: JobStorage | undefined;
}

/** One backup's copy. */
export interface CopyItem {
  readonly name: string;
  /** copied; already (a good copy was there); would-copy (dry run); failed. */
  readonly status: 'copied' | 'already' | 'would-copy' | 'failed';
  /** Where it was copied from: `local`, `primary` or a further target's name. */
  readonly from: string | undefined;
  readonly sizeBytes: number;
  readonly error?: BackupResult['error'];
}

/** What {@link copy} did, per backup. */
export interface CopyReport {
  readonly job: string;
  readonly database: string;
  readonly to: string;
  readonly dryRun: boolean;
  readonly items: readonly CopyItem[];
}

/** The job's places by name: BACKUP_DIR (`local`), the first bucket (`primary`), the further targets. */
function placesOf(storage: JobStorage): [string, StorageBackend][] {
  return [
    ['local', storage.local],
    ...(storage.remote ? [[remoteTargetName(storage), storage.remote] as [string, StorageBackend]] : []),
    ...(storage.extra ?? []).map((e) => [e.name, e.backend] as [string, StorageBackend]),
  ];
}

/**
 * `pgbak copy NAME… --to TARGET | --missing --to TARGET`: copy good backups to a bucket target
 * that lacks them, streamed from the first place holding a good copy (BACKUP_DIR, then the other
 * targets), each file checked against the manifest's size and sha256 on the way, the manifest
 * last (the code of `pgbak upload`). A copy that fails leaves no manifest there.
 */
export async function copy(options: CopyOptions): Promise<CopyReport> {
  const { job } = options;
  const logger = (options.logger ?? silentLogger).child({ database: job.database });
  const names = options.names ?? [];
  if (names.length > 0 && options.missing) throw new UsageError('give backup NAMEs or --missing, not both');
  if (names.length === 0 && !options.missing) {
    throw new UsageError('copy what? give the NAME of a backup, or --missing', {
      hint: `\`pgbak copy --missing --to ${options.to} --dry-run\` shows what that target lacks`,
    });
  }
  await using storage = openStorage(job, { signal: options.signal, shared: options.storage });
  const places = placesOf(storage);
  const dest = places.find(([n]) => n === options.to && n !== 'local')?.[1];
  if (!dest) {
    const known = places.filter(([n]) => n !== 'local').map(([n]) => n);
    throw new UsageError(`--to ${options.to}: no such target${known.length ? ` (the targets are ${known.join(', ')})` : ''}`, {
      hint: 'a target is a bucket: primary (STORAGE_*) or the second one (STORAGE_2_*, named by STORAGE_2_NAME)',
    });
  }
  const sources = places.filter(([, b]) => b !== dest);
  // What the target holds, and for each backup the first source with a good copy.
  const inDest = new Map((await listBackups({ remote: dest, prefix: job.filePrefix })).map((e) => [e.name, e]));
  const found = new Map<string, { entry: CatalogEntry; from: string; backend: StorageBackend }>();
  for (const [from, backend] of sources) {
    let entries: CatalogEntry[];
    try {
      entries = await listBackups({ local: backend, prefix: job.filePrefix });
    } catch (err) {
      logger.warn(`cannot list ${from}; copying from the other places`, { error: toAppError(err).message });
      continue;
    }
    for (const e of entries) if (e.state === 'good' && e.manifest && !found.has(e.name)) found.set(e.name, { entry: e, from, backend });
  }
  const wanted = options.missing
    ? [...found.keys()].filter((n) => inDest.get(n)?.state !== 'good').sort()
    : names.map((n) => n.replace(/\.(manifest\.json|dump.*|sql.*)$/, ''));
  const items: CopyItem[] = [];
  for (const name of wanted) {
    const src = found.get(name);
    const sizeBytes = src?.entry.size ?? 0;
    if (inDest.get(name)?.state === 'good') {
      items.push({ name, status: 'already', from: undefined, sizeBytes });
      continue;
    }
    if (!src) {
      const error = new NotFoundError(`${name}: no good copy in ${sources.map(([n]) => n).join(', ')} to copy from`, {
        hint: '`pgbak list` shows where each backup is, and `pgbak verify NAME` checks its copies',
      });
      items.push({ name, status: 'failed', from: undefined, sizeBytes, error: resultError(error) });
      continue;
    }
    if (src.entry.database !== job.database) {
      const error = new UsageError(`${name} is a backup of ${src.entry.database ?? 'an unknown database'}, not of ${job.database}`);
      items.push({ name, status: 'failed', from: src.from, sizeBytes, error: resultError(error) });
      continue;
    }
    if (options.dryRun) {
      items.push({ name, status: 'would-copy', from: src.from, sizeBytes });
      continue;
    }
    try {
      logger.info(`copying ${name} from ${src.from} to ${options.to}`);
      await copyBackupFiles({
        source: src.backend,
        dest,
        manifest: src.entry.manifest!,
        signal: options.signal,
        lock: dest === storage.remote ? job.s3?.objectLock : storage.extra?.find((e) => e.backend === dest)?.objectLock,
        days: job.retention.days,
      });
      logger.info('copy finished', { backup: name, location: backupUrl(src.entry.manifest!, (k) => dest.urlOf(k)) });
      items.push({ name, status: 'copied', from: src.from, sizeBytes });
    } catch (err) {
      const e = toAppError(err);
      logger.error('copy failed', { backup: name, error: e.message });
      // The run record and unverified objects without a manifest are leftovers: prune removes them.
      items.push({ name, status: 'failed', from: src.from, sizeBytes, error: resultError(e) });
    }
    if (options.signal?.aborted) break;
  }
  return { job: job.name, database: job.database, to: options.to, dryRun: Boolean(options.dryRun), items };
}
