import { parseKey } from '../catalog/backup-name.js';
import { listBackups, type CatalogEntry, type CopyInfo, type LocationName } from '../catalog/catalog.js';
import type { JobConfig } from '../config/job.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { applyPolicy, type PolicyBackup, type PolicyResult } from './policy.js';

export interface PruneOptions {
  readonly job: Pick<JobConfig, 'name' | 'database' | 'filePrefix' | 'retention'>;
  readonly local: StorageBackend;
  readonly remote?: StorageBackend | undefined;
  /** The clock (tests inject one); default: the current time. */
  readonly now?: Date | undefined;
  /** Decide and report, delete nothing. */
  readonly dryRun?: boolean | undefined;
  readonly logger?: Logger | undefined;
}

export interface DeletedKey {
  readonly location: LocationName;
  readonly key: string;
}

export interface PruneResult {
  /** Every backup of this database with its fate and reasons, newest first. */
  readonly decisions: PolicyResult;
  /** Keys actually deleted, in the order they were deleted (empty on a dry run). */
  readonly deleted: readonly DeletedKey[];
  /** Keys the decisions call for deleting (what a dry run would delete), in delete order. */
  readonly planned: readonly DeletedKey[];
  /** One line per failed delete; the keys after a failed manifest delete are left in place. */
  readonly errors: readonly string[];
  readonly dryRun: boolean;
}

/**
 * The keys of one backup in one location, in the only safe delete order: the manifest first
 * (from then on the backup is merely incomplete, never "good" with its artifact gone), then
 * the verification record, globals and the artifact.
 */
function deleteOrder(copy: CopyInfo): string[] {
  return [copy.manifest, copy.verification, copy.globals, copy.artifact, ...copy.others]
    .filter((o) => o !== undefined)
    .map((o) => o.key);
}

/** True only for a root-level pgbak key of exactly this backup (and so of this job's prefix). */
function isOwnKey(key: string, name: string, prefix: string): boolean {
  const parsed = parseKey(key);
  return !key.includes('/') && parsed !== undefined && parsed.prefix === prefix && parsed.base === name;
}

/** Is this catalog entry one of this job's backups? Name prefix AND, when readable, the manifest's database. */
function belongsTo(entry: CatalogEntry, job: PruneOptions['job']): boolean {
  return entry.prefix === job.filePrefix && (entry.manifest === undefined || entry.manifest.database === job.database);
}

/**
 * Apply the job's retention policy to its backups in BACKUP_DIR and the bucket. Only keys that
 * parse as pgbak names with the job's file prefix and (where a manifest exists) the job's
 * database are ever deleted; other files, prefixes and databases are not even considered.
 * A listing or manifest read failure throws before anything is deleted; delete failures are
 * collected in `errors` and the rest of the run continues.
 */
export async function prune(options: PruneOptions): Promise<PruneResult> {
  const { job, local, remote } = options;
  const now = options.now ?? new Date();
  const dryRun = options.dryRun ?? false;
  const log = (options.logger ?? silentLogger).child({ database: job.database, stage: 'prune' });

  const entries = (await listBackups({ local, remote, prefix: job.filePrefix })).filter((e) => belongsTo(e, job));
  const byName = new Map(entries.map((e) => [e.name, e]));
  const items: PolicyBackup[] = entries.map((e) => ({
    name: e.name,
    database: job.database,
    time: e.time,
    state: e.state,
    detail: e.problems.length ? e.problems.join('; ') : undefined,
  }));
  const decisions = applyPolicy(items, { database: job.database, ...job.retention }, now);

  for (const d of decisions.keep) log.debug(d.reasons.join('; '), { backup: d.name });
  const backends: Record<LocationName, StorageBackend | undefined> = { local, remote };
  const planned: DeletedKey[] = [];
  const deleted: DeletedKey[] = [];
  const errors: string[] = [];

  // Oldest first: an interrupted run leaves the newer backups.
  for (const d of [...decisions.remove].reverse()) {
    const entry = byName.get(d.name)!;
    log.info(`${dryRun ? 'would remove' : 'removing'} ${d.name}: ${d.reasons.join('; ')}`, { backup: d.name });
    for (const location of ['local', 'remote'] as const) {
      const copy = entry.locations[location];
      const backend = backends[location];
      if (!copy || !backend) continue;
      // Defence in depth: never a key that is not this backup's.
      const keys = deleteOrder(copy).filter((key) => isOwnKey(key, d.name, job.filePrefix));
      planned.push(...keys.map((key) => ({ location, key })));
      if (dryRun) continue;
      for (const key of keys) {
        try {
          await backend.delete(key);
          deleted.push({ location, key });
        } catch (err) {
          const message = `cannot delete ${backend.urlOf(key)}: ${err instanceof Error ? err.message : String(err)}`;
          errors.push(message);
          log.error(message, { backup: d.name, location });
          // Never delete the artifact while its manifest may still claim a good backup.
          if (copy.manifest && key === copy.manifest.key) break;
        }
      }
    }
  }
  log.info(dryRun ? 'prune dry run done' : 'prune done', {
    kept: decisions.keep.length,
    removed: decisions.remove.length,
    deleted: deleted.length,
    errors: errors.length,
  });
  return { decisions, deleted, planned, errors, dryRun };
}
