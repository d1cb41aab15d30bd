import type { JobConfig } from '../config/job.js';
import { ConfigError } from '../errors/index.js';
import { initBucket as prepareBucket, type InitBucketReport } from '../storage/init-bucket.js';
import { openStorage } from '../storage/job-storage.js';

export type { AccessCheck, AccessCheckName, InitBucketReport } from '../storage/init-bucket.js';

/** Options of {@link initBucket}. */
export interface InitBucketJobOptions {
  /** Aborts the bucket's requests (a command's stop). */
  readonly signal?: AbortSignal | undefined;
  /** Also install the lifecycle rule: expire the prefix after the job's RETENTION_DAYS. */
  readonly lifecycle?: boolean | undefined;
  /** Create the bucket with S3 Object Lock and versioning (`pgbak init --object-lock`). */
  readonly objectLock?: boolean | undefined;
}

/**
 * Prepare a job's bucket (`pgbak init`): create it when missing and prove write, read, list and
 * delete there (idempotent); see storage/init-bucket. A job without the S3 keys is a ConfigError.
 */
export async function initBucket(job: JobConfig, options: InitBucketJobOptions = {}): Promise<InitBucketReport> {
  if (!job.s3) {
    throw new ConfigError(['STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY: both must be set for `pgbak init`'], {
      hint: 'set the MinIO/S3 keys in the environment or .env',
    });
  }
  // A locked bucket is versioned: the probe's delete must remove its version, as with STORAGE_OBJECT_LOCK.
  const s3 = options.objectLock ? { ...job.s3, objectLock: job.s3.objectLock ?? ('governance' as const) } : job.s3;
  await using storage = openStorage({ ...job, s3 }, { signal: options.signal });
  const report = await prepareBucket(storage, {
    lifecycleDays: options.lifecycle ? job.retention.days : undefined,
    objectLock: options.objectLock,
  });
  if (options.objectLock && !job.s3.objectLock) {
    return {
      ...report,
      warnings: [
        ...report.warnings,
        'the bucket has Object Lock, but STORAGE_OBJECT_LOCK=off: set it to governance or compliance to lock backups',
      ],
    };
  }
  return report;
}
