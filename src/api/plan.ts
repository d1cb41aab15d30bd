import { artifactKey, baseName, directoryKey, globalsKey, manifestKey, runKey } from '../catalog/backup-name.js';
import { formatCompression } from '../config/parsers.js';
import { redact } from '../logging/redact.js';
import type { JobConfig } from '../config/job.js';
import { PartialError, type AppError } from '../errors/index.js';
import { compressionPlan } from '../pipeline/compression.js';
import { storedFileName } from './backup-directory.js';
import { preflight, type CheckResult } from './preflight.js';

/** What `backup --dry-run` found and would do, as data (the CLI renders it). */
export interface BackupPlan {
  /** ready: a backup would succeed; partial: it would be kept locally only (exit 3); fail: a check failed. */
  readonly verdict: 'ready' | 'partial' | 'fail';
  readonly data: {
    readonly job: string;
    readonly database: string;
    readonly databaseUrl: string;
    readonly checks: readonly Omit<CheckResult, 'error'>[];
    readonly files: readonly string[];
    readonly objects: readonly string[];
    readonly steps: readonly string[];
    readonly ok: boolean;
  };
  readonly error: AppError | undefined;
}

/**
 * `backup --dry-run`: resolve the configuration, run every preflight check (database, pg_dump,
 * gpg key, directories, bucket) and describe what a run would create. Creates nothing: no
 * directory, no file, no object, no log line.
 */
export async function planBackup(options: { job: JobConfig; upload: boolean; encrypt: boolean; now?: Date }): Promise<BackupPlan> {
  const { job } = options;
  const encryption = !options.encrypt ? undefined : job.gpgRecipient ? 'gpg' : job.age.recipients ? 'age' : undefined;
  const encrypt = encryption !== undefined;
  const upload = options.upload && Boolean(job.s3);
  // As in a real run, a bucket that fails the check costs the upload, not the local backup.
  const pre = await preflight({ job, encrypt, upload, stopOnFailure: false, keepClient: false, optionalBucket: true });
  const error =
    pre.error ??
    (pre.bucketError &&
      new PartialError(`the backup would be kept locally only: ${pre.bucketError.message}`, {
        hint: pre.bucketError.hint,
        cause: pre.bucketError,
      }));
  const base = baseName(job.filePrefix, options.now ?? new Date());
  const plan = compressionPlan(job.compression, pre.pgDump?.major ?? 15);
  // BACKUP_JOBS ≥ 2: a directory-format dump, stored as <name>.dir/ (toc.dat and a file per table; backup-directory.ts).
  const jobs = job.backup.jobs;
  const dir = jobs >= 2;
  const dumpKey = dir
    ? directoryKey(base, storedFileName('toc.dat', plan, encryption ?? false))
    : artifactKey(base, { streamCompression: plan.streamMethod, encrypted: encryption ?? false });
  const keys = [runKey(base), ...(job.backup.globals ? [globalsKey(base, encryption ?? false)] : []), dumpKey, manifestKey(base)];
  // The directory, as the backup's result names it.
  const shown = (k: string) => (k === dumpKey && dir ? `${base}.dir/` : k);
  const files = keys.map((k) => `${job.backupDir}/${shown(k)}`);
  const buckets = upload ? [job.s3!, ...(job.extraTargets ?? [])] : [];
  const objects = buckets.flatMap((b) => keys.map((k) => `s3://${b.bucket}/${b.prefix}${shown(k)}`));
  const how = `${formatCompression(job.compression)}${plan.by === 'stream' ? `, compressed in the stream by ${plan.streamMethod}` : ''}`;
  const steps = [
    dir
      ? `pg_dump --format=directory --jobs=${jobs} ${plan.pgDumpArgs.join(' ')} (${how}) into a temporary directory in ${job.backupDir}, then each file (toc.dat, one a table) stored ${jobs} at a time and removed`
      : `pg_dump --format=custom ${plan.pgDumpArgs.join(' ')} (${how})`,
    ...(job.backup.globals ? ['pg_dumpall --globals-only (roles, tablespaces)'] : []),
    encryption === 'gpg'
      ? `gpg --encrypt to ${job.gpgRecipient}`
      : encryption === 'age'
        ? `age --encrypt to ${pre.age ? `${pre.age.recipients.length} recipient(s)` : 'AGE_RECIPIENTS'}`
        : `no encryption (${job.gpgRecipient || job.age.recipients ? '--no-encrypt' : 'GPG_RECIPIENT / AGE_RECIPIENTS not set'})`,
    dir ? 'sha256 of each stored file' : 'sha256 of the stored bytes',
    'claim the name: the run record first, create-only (locally, then in the bucket)',
    dir ? `write ${job.backupDir}/${base}.dir/ (each file: temp file, fsync, rename)` : `write ${job.backupDir} (temp file, fsync, rename)`,
    upload
      ? `upload ${dir ? 'each file ' : ''}to s3://${job.s3!.bucket}/${job.s3!.prefix} at ${job.s3!.endpoint} (multipart, in the same pass)`
      : `no upload (${job.s3 ? '--no-upload' : 'STORAGE_ACCESS_KEY / STORAGE_SECRET_KEY not set'})`,
    ...(upload ? (job.extraTargets ?? []) : []).map(
      (t) =>
        `and to target ${t.name}: s3://${t.bucket}/${t.prefix} at ${t.endpoint}${t.objectLock ? ` (Object Lock ${t.objectLock})` : ''} (the same stream, its own multipart upload and manifest)`,
    ),
    `write the manifest last (locally, then in the bucket)${dir ? ': it lists every file with its sha256' : ''}`,
    job.backup.prune
      ? `prune: keep ${job.retention.days} days, never fewer than ${job.retention.keepMin} good backups`
      : 'no prune (BACKUP_PRUNE=false)',
  ];
  const verdict = pre.error ? 'fail' : pre.bucketError ? 'partial' : 'ready';
  return {
    verdict,
    data: {
      job: job.name,
      database: job.database,
      databaseUrl: redact(job.databaseUrl),
      checks: pre.checks.map(({ error: _e, ...c }) => c),
      files,
      objects,
      steps,
      ok: !error,
    },
    error,
  };
}
