import { AppError, toAppError } from '../errors/index.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { baseName, runKey } from './backup-name.js';
import { claimName, newRunRecord, type RunRecord } from './run-record.js';

/** A key a run stored in one backend (removed again when the run fails). */
export interface StoredKey {
  readonly backend: StorageBackend;
  readonly key: string;
}

/**
 * Claim a backup name with a create-only run record in the local directory and the bucket. A name
 * already claimed (by another writer in the same second, on this host or another) moves the name
 * on by a second, up to 30 times: the name's time is then a few seconds after the start, which
 * the manifest records exactly. The bucket's failure is not the run's (`onRemoteFailure`).
 */
export async function claimBackupName(o: {
  prefix: string;
  started: Date;
  keysOf: (name: string) => string[];
  fields: { runId: string; job: string; database: string; systemIdentifier: string | undefined; startedAt: string };
  local: StorageBackend;
  remote: () => StorageBackend | undefined;
  onRemoteFailure: (err: AppError) => void;
  signal: AbortSignal | undefined;
}): Promise<{ name: string; written: StoredKey[]; moved: string | undefined }> {
  const first = baseName(o.prefix, o.started);
  for (let i = 0; i < 30; i++) {
    const name = baseName(o.prefix, new Date(o.started.getTime() + i * 1000));
    const record = newRunRecord({ ...o.fields, name, keys: o.keysOf(name) });
    const remote = o.remote();
    // The directory and the bucket are claimed at once; a name taken in either is given back in both.
    const [local, bucket] = await Promise.allSettled([
      claimIn(o.local, record, o.signal),
      remote ? claimIn(remote, record, o.signal) : Promise.resolve<Claim>('free'),
    ]);
    if (local.status === 'rejected') {
      if (remote && bucket.status === 'fulfilled' && bucket.value === 'claimed') await remote.delete(runKey(name)).catch(() => undefined);
      throw local.reason;
    }
    // The bucket failed, not the claim: go on locally.
    if (bucket.status === 'rejected') o.onRemoteFailure(toAppError(bucket.reason));
    const inBucket = bucket.status === 'fulfilled' ? bucket.value : 'free';
    if (local.value !== 'claimed' || inBucket === 'taken') {
      if (local.value === 'claimed') await o.local.delete(runKey(name)).catch(() => undefined);
      if (remote && inBucket === 'claimed') await remote.delete(runKey(name)).catch(() => undefined);
      continue;
    }
    const written: StoredKey[] = [{ backend: o.local, key: runKey(name) }];
    if (remote && inBucket === 'claimed' && o.remote()) written.push({ backend: remote, key: runKey(name) });
    return { name, written, moved: i > 0 ? first : undefined };
  }
  throw new AppError('name-taken', `every backup name from ${first} on for 30 seconds is already claimed by other runs`, {
    hint: 'several writers share this BACKUP_DIR or bucket prefix: give each its own STORAGE_PREFIX',
  });
}

/** A name's claim in one backend: ours now, or taken there (another run's record, or files under it). */
type Claim = 'claimed' | 'taken' | 'free';

/**
 * Claim `record`'s name in `backend` with a create-only run record. A file already under this
 * name (the guide's own script, a manual pg_dump of the same second) is not ours to replace:
 * the name is given back and taken.
 */
async function claimIn(backend: StorageBackend, record: RunRecord, signal: AbortSignal | undefined): Promise<Claim> {
  if (!(await claimName(backend, record, signal))) return 'taken';
  // A listing that fails after the record was created does not cost the claim.
  if (!(await holdsOtherFiles(backend, record.name).catch(() => false))) return 'claimed';
  await backend.delete(runKey(record.name)).catch(() => undefined);
  return 'taken';
}

/** Does `backend` hold any key of backup `name` other than its run record? */
async function holdsOtherFiles(backend: StorageBackend, name: string): Promise<boolean> {
  for await (const o of backend.list(`${name}.`)) if (o.key !== runKey(name) && !o.key.includes('/')) return true;
  return false;
}
