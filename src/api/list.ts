import type { BackupState, CatalogEntry, CopyInfo } from '../catalog/catalog.js';
import type { VerificationRecord } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { UsageError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import { CatalogSource } from '../catalog/find-backup.js';

/** One backup as `pgbak list` shows it (and `--json` prints it). */
export interface ListedBackup {
  readonly name: string;
  readonly database: string | undefined;
  /** ISO time the backup started. */
  readonly time: string;
  /** Artifact bytes. */
  readonly size: number;
  readonly encrypted: boolean;
  /**
   * The locations holding a complete copy (its manifest and its artifact, good or not); `none`
   * when no location does (a leftover of a failed run, a foreign file).
   */
  readonly where: 'local' | 'remote' | 'both' | 'none';
  /** The best state of its copies (good when one copy is). */
  readonly state: BackupState;
  /** Why a copy is not good, prefixed with its location, and disagreements between copies (empty when all is well). */
  readonly problems: readonly string[];
  /** Where the complete copies' artifacts are (path, s3:// URL). */
  readonly locations: readonly string[];
  /** Each location's copy, judged on its own. */
  readonly copies: { readonly local?: ListedCopy | undefined; readonly remote?: ListedCopy | undefined };
  /** The newest verification: when, what kind, whether it passed, how long it took. */
  readonly verified: Pick<VerificationRecord, 'verifiedAt' | 'ok' | 'kind' | 'durationMs'> | null;
}

/** One location's copy of a backup. */
export interface ListedCopy {
  readonly state: BackupState;
  /** Why this copy is not good (empty when good). */
  readonly problems: readonly string[];
}

export interface ListOptions {
  readonly job: Pick<JobConfig, 'backupDir' | 's3'>;
  /** Only this location (default both). */
  readonly only?: 'local' | 'remote' | undefined;
  /** Stops the bucket's requests (SIGTERM). */
  readonly signal?: AbortSignal | undefined;
  /** Gets the one warning when the bucket cannot be read and BACKUP_DIR alone is listed. */
  readonly logger?: Logger | undefined;
  /** The job's open storage; opened (and released) here when absent. */
  readonly storage?: JobStorage | undefined;
}

/** A copy is present only when its manifest and its artifact are. */
function complete(c: CopyInfo | undefined): boolean {
  return c !== undefined && c.manifest !== undefined && c.artifact !== undefined;
}

function listed(e: CatalogEntry, urlOf: Record<'local' | 'remote', ((key: string) => string) | undefined>): ListedBackup {
  const here = (['local', 'remote'] as const).filter((w) => complete(e.locations[w]));
  const locations: string[] = [];
  for (const w of here) {
    const a = e.locations[w]?.artifact;
    const url = urlOf[w];
    if (a && url) locations.push(url(a.key));
  }
  const copies: { local?: ListedCopy; remote?: ListedCopy } = {};
  for (const w of ['local', 'remote'] as const) {
    const c = e.locations[w];
    if (c) copies[w] = { state: c.state, problems: c.problems };
  }
  const v = e.verification;
  return {
    name: e.name,
    database: e.database,
    time: e.time.toISOString(),
    size: e.size,
    encrypted: e.encrypted,
    where: here.length === 2 ? 'both' : (here[0] ?? 'none'),
    state: e.state,
    problems: e.problems,
    locations,
    copies,
    verified: v ? { verifiedAt: v.verifiedAt, ok: v.ok, kind: v.kind, durationMs: v.durationMs } : null,
  };
}

/**
 * Every backup in BACKUP_DIR and in the bucket (whatever its database), merged by name, newest
 * first, with its state and newest verification.
 */
export async function list(options: ListOptions): Promise<ListedBackup[]> {
  await using storage = openStorage(options.job, { signal: options.signal, shared: options.storage });
  if (options.only === 'remote' && !storage.remote) {
    throw new UsageError('--remote: no bucket is configured', { hint: 'set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY' });
  }
  const source = new CatalogSource({
    local: options.only === 'remote' ? undefined : storage.local,
    remote: options.only === 'local' ? undefined : storage.remote,
  });
  const entries = await source.list();
  for (const w of source.warnings) options.logger?.warn(w);
  const urlOf = {
    local: (k: string) => storage.local.urlOf(k),
    remote: storage.remote ? (k: string) => storage.remote!.urlOf(k) : undefined,
  };
  return entries.map((e) => listed(e, urlOf));
}
