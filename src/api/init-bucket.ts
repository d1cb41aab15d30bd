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
  await using storage = openStorage(job, { signal: options.signal });
  return prepareBucket(storage, { lifecycleDays: options.lifecycle ? job.retention.days : undefined });
}
