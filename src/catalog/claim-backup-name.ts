import { AppError, toAppError } from '../errors/index.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { baseName, runKey } from './backup-name.js';
import { claimName, newRunRecord } from './run-record.js';

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
    if (!(await claimName(o.local, record, o.signal))) continue;
    const written: StoredKey[] = [{ backend: o.local, key: runKey(name) }];
    // A file already under this name (the guide's own script, a manual pg_dump of the same
    // second) is not ours to replace: give the name back and take the next one.
    if (await holdsOtherFiles(o.local, name)) {
      await o.local.delete(runKey(name)).catch(() => undefined);
      continue;
    }
    const remote = o.remote();
    if (remote) {
      let ok: boolean;
      try {
        ok = await claimName(remote, record, o.signal);
      } catch (err) {
        o.onRemoteFailure(toAppError(err));
        ok = true; // the bucket failed, not the claim: go on locally
      }
      if (ok && o.remote() && (await holdsOtherFiles(remote, name).catch(() => false))) {
        await remote.delete(runKey(name)).catch(() => undefined);
        ok = false;
      }
      if (!ok) {
        await o.local.delete(runKey(name)).catch(() => undefined);
        continue;
      }
      if (o.remote()) written.push({ backend: remote, key: runKey(name) });
    }
    return { name, written, moved: i > 0 ? first : undefined };
  }
  throw new AppError('name-taken', `every backup name from ${first} on for 30 seconds is already claimed by other runs`, {
    hint: 'several writers share this BACKUP_DIR or bucket prefix: give each its own STORAGE_PREFIX',
  });
}

/** Does `backend` hold any key of backup `name` other than its run record? */
async function holdsOtherFiles(backend: StorageBackend, name: string): Promise<boolean> {
  for await (const o of backend.list(`${name}.`)) if (o.key !== runKey(name) && !o.key.includes('/')) return true;
  return false;
}
