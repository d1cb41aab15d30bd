import type { JobConfig } from '../config/job.js';
import { LocalBackend } from './local-backend.js';
import { S3Backend } from './s3-backend.js';

export * from './storage-backend.js';
export * from './local-backend.js';
export * from './stale-temps.js';
export * from './s3-backend.js';

/** The storage of one job: the local BACKUP_DIR always, S3 when both keys are configured. */
export interface JobStorage {
  readonly local: LocalBackend;
  readonly remote: S3Backend | undefined;
}

/**
 * Build a job's backends from its resolved configuration. `signal` (a command's stop) aborts
 * every S3 request that reads or writes.
 */
export function createStorage(job: Pick<JobConfig, 'backupDir' | 's3'>, opts: { partSize?: number; signal?: AbortSignal | undefined } = {}): JobStorage {
  return {
    local: new LocalBackend(job.backupDir),
    remote: job.s3 ? new S3Backend(job.s3, { partSize: opts.partSize, signal: opts.signal }) : undefined,
  };
}
