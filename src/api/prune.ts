import type { JobConfig } from '../config/job.js';
import type { Logger } from '../logging/logger.js';
import { prune as applyRetention, type PruneResult } from '../retention/prune.js';
import { openStorage } from '../storage/job-storage.js';
import { jobIdentity } from './identity.js';
import { parseKey } from '../catalog/backup-name.js';
import type { LocationName } from '../catalog/catalog.js';
import { silentLogger } from '../logging/logger.js';
import { pruneWal, type WalPruneResult } from './prune-wal.js';

export type { PruneResult, DeletedKey } from '../retention/prune.js';

/** A file prune deleted (or, on a dry run, would delete): its backup, where it is, its path or s3:// URL. */
export interface PrunedFile {
  readonly backup: string;
  readonly location: LocationName;
  readonly key: string;
  readonly path: string;
}

/** {@link PruneResult} with the files it deleted, or on a dry run would delete, in delete order. */
export interface PruneJobResult extends PruneResult {
  readonly files: readonly PrunedFile[];
  /** Base backups and WAL (prune-wal.ts); absent when the job has no WAL archive. */
  readonly wal?: WalPruneResult | undefined;
}

/** Options of {@link prune}. */
export interface PruneJobOptions {
  readonly logger?: Logger | undefined;
  /** Stops the listing (a command's stop); deleting is cleanup and is bounded by the caller. */
  readonly signal?: AbortSignal | undefined;
  /** Decide and report, delete nothing. */
  readonly dryRun?: boolean | undefined;
  /** The clock (tests inject one); default: the current time. */
  readonly now?: Date | undefined;
  /** Backups never removed whatever the policy says. */
  readonly protect?: readonly string[] | undefined;
}

/**
 * Apply a job's retention (`pgbak prune`) to BACKUP_DIR and the bucket: opens the job's storage
 * for this call, learns whose backups are the job's (the server's system identifier, else this
 * host's last run), decides and deletes. Never removes the last good backups; see retention/prune.
 */
export async function prune(job: JobConfig, options: PruneJobOptions = {}): Promise<PruneJobResult> {
  await using storage = openStorage(job, { signal: options.signal });
  const identity = await jobIdentity(job, { local: storage.local });
  const result = await applyRetention({
    job,
    local: storage.local,
    remote: storage.remote,
    dryRun: Boolean(options.dryRun),
    logger: options.logger,
    now: options.now,
    protect: options.protect,
    systemIdentifier: identity.systemIdentifier,
  });
  const backends = { local: storage.local, remote: storage.remote };
  const files: PrunedFile[] = (result.dryRun ? result.planned : result.deleted).map(({ location, key }) => ({
    backup: parseKey(key)?.base ?? key,
    location,
    key,
    path: backends[location]?.urlOf(key) ?? key,
  }));
  // Each further target (STORAGE_2_*) on its own: its copies are judged by what it holds.
  const more: PruneResult[] = [];
  for (const t of storage.extra ?? []) {
    const r = await applyRetention({
      job,
      local: t.backend,
      dryRun: Boolean(options.dryRun),
      logger: options.logger,
      now: options.now,
      protect: options.protect,
      systemIdentifier: identity.systemIdentifier,
    });
    more.push(r);
    for (const { key } of r.dryRun ? r.planned : r.deleted) {
      files.push({ backup: parseKey(key)?.base ?? key, location: 'remote', key, path: t.backend.urlOf(key) });
    }
  }
  const wal = await pruneWal(job, storage, {
    dryRun: result.dryRun,
    now: options.now ?? new Date(),
    logger: options.logger ?? silentLogger,
  });
  return {
    ...result,
    deleted: [...result.deleted, ...more.flatMap((r) => r.deleted)],
    planned: [...result.planned, ...more.flatMap((r) => r.planned)],
    errors: [...result.errors, ...more.flatMap((r) => r.errors), ...(wal?.errors ?? [])],
    locked: [...result.locked, ...more.flatMap((r) => r.locked)],
    warnings: [...result.warnings, ...more.flatMap((r) => r.warnings), ...(wal?.warnings ?? [])],
    missingPermission: result.missingPermission ?? more.find((r) => r.missingPermission)?.missingPermission,
    files,
    ...(wal ? { wal } : {}),
  };
}
