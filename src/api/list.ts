import { listBackups, type BackupState, type CatalogEntry } from '../catalog/catalog.js';
import type { VerificationRecord } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { UsageError } from '../errors/index.js';
import { createStorage } from '../storage/index.js';

/** One backup as `pgbak list` shows it (and `--json` prints it). */
export interface ListedBackup {
  readonly name: string;
  readonly database: string | undefined;
  /** ISO time the backup started. */
  readonly time: string;
  /** Artifact bytes. */
  readonly size: number;
  readonly encrypted: boolean;
  readonly where: 'local' | 'remote' | 'both';
  readonly state: BackupState;
  /** Why it is not good (empty when good). */
  readonly problems: readonly string[];
  /** Where the artifact is (path, s3:// URL). */
  readonly locations: readonly string[];
  /** The newest verification: when, what kind, whether it passed, how long it took. */
  readonly verified: Pick<VerificationRecord, 'verifiedAt' | 'ok' | 'kind' | 'durationMs'> | null;
}

export interface ListOptions {
  readonly job: Pick<JobConfig, 'backupDir' | 's3'>;
  /** Only this location (default both). */
  readonly only?: 'local' | 'remote' | undefined;
  /** Stops the bucket's requests (SIGTERM). */
  readonly signal?: AbortSignal | undefined;
}

function listed(e: CatalogEntry, urlOf: Record<'local' | 'remote', ((key: string) => string) | undefined>): ListedBackup {
  const here = (['local', 'remote'] as const).filter((w) => e.locations[w]);
  const locations: string[] = [];
  for (const w of here) {
    const a = e.locations[w]?.artifact;
    const url = urlOf[w];
    if (a && url) locations.push(url(a.key));
  }
  const v = e.verification;
  return {
    name: e.name,
    database: e.database,
    time: e.time.toISOString(),
    size: e.size,
    encrypted: e.encrypted,
    where: here.length === 2 ? 'both' : (here[0] ?? 'local'),
    state: e.state,
    problems: e.problems,
    locations,
    verified: v ? { verifiedAt: v.verifiedAt, ok: v.ok, kind: v.kind, durationMs: v.durationMs } : null,
  };
}

/**
 * Every backup in BACKUP_DIR and in the bucket (whatever its database), merged by name, newest
 * first, with its state and newest verification.
 */
export async function list(options: ListOptions): Promise<ListedBackup[]> {
  const storage = createStorage(options.job, { signal: options.signal });
  if (options.only === 'remote' && !storage.remote) {
    throw new UsageError('--remote: no bucket is configured', { hint: 'set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY' });
  }
  try {
    const entries = await listBackups({
      local: options.only === 'remote' ? undefined : storage.local,
      remote: options.only === 'local' ? undefined : storage.remote,
    });
    const urlOf = { local: (k: string) => storage.local.urlOf(k), remote: storage.remote ? (k: string) => storage.remote!.urlOf(k) : undefined };
    return entries.map((e) => listed(e, urlOf));
  } finally {
    storage.remote?.destroy();
  }
}
