import type { JobConfig } from '../config/job.js';
import { createStorage } from './index.js';
import type { StorageBackend } from './storage-backend.js';

/**
 * The storage of one job for one run or command: BACKUP_DIR always, the bucket when configured.
 * Opened once (`await using storage = openStorage(job)`) and released once: disposing it closes
 * the S3 client's sockets. Callers see only the StorageBackend contract.
 */
export interface JobStorage extends AsyncDisposable {
  readonly local: StorageBackend;
  readonly remote: StorageBackend | undefined;
}

export interface OpenStorageOptions {
  /** A command's stop: aborts every S3 request that reads or writes. */
  readonly signal?: AbortSignal | undefined;
}

/** Open a job's storage; see {@link JobStorage}. */
export function openStorage(job: Pick<JobConfig, 'backupDir' | 's3'>, options: OpenStorageOptions = {}): JobStorage {
  const { local, remote } = createStorage(job, { signal: options.signal });
  let released = false;
  return {
    local,
    remote,
    async [Symbol.asyncDispose]() {
      if (released) return;
      released = true;
      remote?.destroy();
    },
  };
}
