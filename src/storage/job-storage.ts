import { PRIMARY_TARGET, type JobConfig } from '../config/job.js';
import { LocalBackend } from './local-backend.js';
import { S3Backend } from './s3-backend.js';
import { commandSilence, type SilentEndpoints } from './silent-endpoints.js';
import type { StorageBackend } from './storage-backend.js';

/**
 * The storage of one job for one run or command: BACKUP_DIR always, the bucket when configured.
 * Opened once (`await using storage = openStorage(job)`) and released once: disposing it closes
 * the S3 client's sockets. Callers see only the StorageBackend contract.
 */
export interface JobStorage extends AsyncDisposable {
  readonly local: StorageBackend;
  readonly remote: StorageBackend | undefined;
  /** The name of `remote` as a target: `primary`, or the name pgbak.yaml's `targets:` gives it. */
  readonly remoteName?: string | undefined;
  /** Further bucket targets (STORAGE_2_*), by name; absent or empty for a single-target job. */
  readonly extra?: readonly NamedBackend[] | undefined;
}

/** The target name of a job's first bucket: `primary`, or the name pgbak.yaml's `targets:` gives it. */
export function remoteTargetName(storage: Pick<JobStorage, 'remoteName'>): string {
  return storage.remoteName ?? PRIMARY_TARGET;
}

/** A bucket target and its name (`secondary`, or STORAGE_2_NAME). */
export interface NamedBackend {
  readonly name: string;
  readonly backend: StorageBackend;
  /** Its Object Lock mode (STORAGE_2_OBJECT_LOCK, a target's object_lock); undefined: off. */
  readonly objectLock?: 'governance' | 'compliance' | undefined;
}

/** How {@link openStorage} opens a job's storage. */
export interface OpenStorageOptions {
  /** A command's stop: aborts every S3 request that reads or writes. */
  readonly signal?: AbortSignal | undefined;
  /**
   * A storage the caller already holds (a run's, handed to its steps): returned as a view whose
   * disposal leaves it open, so a step can always `await using` what it gets.
   */
  readonly shared?: JobStorage | undefined;
  /** The run's endpoints that did not answer in time (silent-endpoints.ts): a run passes one to all it opens; default: the command's. */
  readonly silence?: SilentEndpoints | undefined;
}

/** Open a job's storage; see {@link JobStorage}. */
export function openStorage(job: Pick<JobConfig, 'backupDir' | 's3' | 'extraTargets'>, options: OpenStorageOptions = {}): JobStorage {
  if (options.shared) {
    const { local, remote, remoteName, extra } = options.shared;
    return { local, remote, remoteName, extra, async [Symbol.asyncDispose]() {} };
  }
  const local = new LocalBackend(job.backupDir);
  const silence = options.silence ?? commandSilence();
  const remote = job.s3 ? new S3Backend(job.s3, { signal: options.signal, silence }) : undefined;
  const extra = (job.extraTargets ?? []).map((t) => ({
    name: t.name,
    backend: new S3Backend(t, { signal: options.signal, silence }),
    objectLock: t.objectLock,
  }));
  return { ...storageOf(local, remote, extra), remoteName: job.s3?.name };
}

/**
 * A JobStorage over backends the caller built (tests, a foreign bucket): disposing it destroys
 * the remote's client when it has one.
 */
function storageOf(local: StorageBackend, remote: StorageBackend | undefined, extra: NamedBackend[] = []): JobStorage {
  let released = false;
  return {
    local,
    remote,
    extra,
    async [Symbol.asyncDispose]() {
      if (released) return;
      released = true;
      if (remote instanceof S3Backend) remote.destroy();
      for (const e of extra) if (e.backend instanceof S3Backend) e.backend.destroy();
    },
  };
}
