import type { JobConfig } from '../config/job.js';
import { LocalBackend } from './local-backend.js';
import { S3Backend } from './s3-backend.js';

export * from './storage-backend.js';
export * from './local-backend.js';
export * from './stale-temps.js';
export * from './s3-backend.js';
export * from './job-storage.js';
export * from './memory-backend.js';

/**
 * Build a job's backends from its resolved configuration; nothing releases them.
 * @deprecated use `await using storage = openStorage(job, { signal })` (job-storage.ts), which
 * destroys the S3 client once. Kept only until cli/commands/{prune,adopt}.ts, api/after-backup.ts,
 * api/report-run.ts and test/faults/upload-retry.test.ts move to openStorage; then remove it.
 */
export function createStorage(
  job: Pick<JobConfig, 'backupDir' | 's3'>,
  opts: { partSize?: number; signal?: AbortSignal | undefined } = {},
): { readonly local: LocalBackend; readonly remote: S3Backend | undefined } {
  return {
    local: new LocalBackend(job.backupDir),
    remote: job.s3 ? new S3Backend(job.s3, { partSize: opts.partSize, signal: opts.signal }) : undefined,
  };
}
