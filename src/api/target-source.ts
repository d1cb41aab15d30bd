import { UsageError } from '../errors/index.js';
import type { SourceBackends } from '../catalog/find-backup.js';
import { remoteTargetName, type JobStorage } from '../storage/job-storage.js';

/** The names `--from` accepts for a job: local, remote, and each bucket target's name. */
export function sourceNames(storage: JobStorage): string[] {
  return ['local', ...(storage.remote ? ['remote', remoteTargetName(storage)] : []), ...(storage.extra ?? []).map((e) => e.name)].filter(
    (n, i, all) => all.indexOf(n) === i,
  );
}

/**
 * What `--from` reads: BACKUP_DIR (`local`), the first bucket (`remote` or its target name), or
 * a further target by its name (`--from offsite`: the off-site copy when the first bucket is
 * lost); both BACKUP_DIR and the first bucket when absent. An unknown name is a usage error.
 */
export function sourceBackendsOf(storage: JobStorage, from: string | undefined): SourceBackends {
  if (from === undefined) return { local: storage.local, remote: storage.remote };
  if (from === 'local') return { local: storage.local };
  if (from === 'remote' || (storage.remote && from === remoteTargetName(storage))) {
    if (!storage.remote) {
      throw new UsageError(`--from ${from}: no bucket is configured`, {
        hint: 'set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY, or targets: in pgbak.yaml',
      });
    }
    return { remote: storage.remote };
  }
  const extra = storage.extra?.find((e) => e.name === from);
  if (extra) return { remote: extra.backend };
  throw new UsageError(`--from ${from}: no such place`, { hint: `give one of ${sourceNames(storage).join(', ')}` });
}
