import { hostname } from 'node:os';
import { rmdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { directoryKey, parseDirectoryKey, parseKey } from '../catalog/backup-name.js';
import { listBackups, ownBackups, type CatalogEntry, type CopyInfo, type LocationName, type ManifestReads } from '../catalog/catalog.js';
import { otherServersWarning } from '../catalog/other-servers.js';
import { AppError, ConfigError, messageOf } from '../errors/index.js';
import type { JobConfig } from '../config/job.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { ObjectLockedError } from '../storage/s3-object-lock.js';
import { processAlive } from '../model/process-alive.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { removeLeftovers, type Leftovers } from './leftovers.js';
import { applyPolicy, type Decision, type PolicyBackup, type PolicyResult } from './policy.js';

export interface PruneOptions {
  readonly job: Pick<JobConfig, 'name' | 'database' | 'filePrefix' | 'retention'>;
  readonly local: StorageBackend;
  readonly remote?: StorageBackend | undefined;
  /** The clock (tests inject one); default: the current time. */
  readonly now?: Date | undefined;
  /** Decide and report, delete nothing. */
  readonly dryRun?: boolean | undefined;
  /**
   * The server the job's database lives on (its system identifier), when known: backups of the
   * same database name made on another server are not this job's and are never touched. When
   * unknown and the prefix holds backups of several servers, prune refuses to decide.
   */
  readonly systemIdentifier?: string | undefined;
  /** Backups never removed whatever the policy says (the one the current run just made). */
  readonly protect?: readonly string[] | undefined;
  readonly logger?: Logger | undefined;
  /** The run's manifests already read (catalog.ts): retention and the report after a backup share them. */
  readonly reads?: ManifestReads | undefined;
}

export interface DeletedKey {
  readonly location: LocationName;
  readonly key: string;
}

/** A backup's copy that prune would remove but that S3 Object Lock keeps until `until`. */
export interface LockedCopy {
  readonly backup: string;
  readonly location: LocationName;
  /** The retain-until date (ISO), from the manifest or from the server's refusal; undefined for a legal hold. */
  readonly until: string | undefined;
}

export interface PruneResult {
  /**
   * Every backup of this database with its fate and reasons, newest first: removed when it goes
   * from every location that holds it; kept otherwise, with per-location reasons where they differ.
   */
  readonly decisions: PolicyResult;
  /** The policy applied to each location on its own: a broken copy never condemns a good one elsewhere. */
  readonly byLocation: Partial<Record<LocationName, PolicyResult>>;
  /** Keys actually deleted, in the order they were deleted (empty on a dry run). */
  readonly deleted: readonly DeletedKey[];
  /** Keys the decisions call for deleting (what a dry run would delete), in delete order. */
  readonly planned: readonly DeletedKey[];
  /** One line per failed delete; the keys after a failed manifest delete are left in place. */
  readonly errors: readonly string[];
  /** Copies kept because they are still under S3 Object Lock (never an error): each with its date. */
  readonly locked: readonly LockedCopy[];
  /**
   * The permission the key lacked when a delete was refused for it (`s3:DeleteObject`, or
   * `s3:DeleteObjectVersion` with Object Lock): a least-privilege backup key cannot prune.
   */
  readonly missingPermission?: string | undefined;
  /** Said, never failed: e.g. the prefix also holds another server's backups of this database name. */
  readonly warnings: readonly string[];
  readonly dryRun: boolean;
  /** Temp files and multipart uploads of killed runs removed (or, dry, found): see leftovers.ts. */
  readonly leftovers: Leftovers;
}

/**
 * The keys of one backup in one location, in the only safe delete order: the manifest first
 * (from then on the backup is merely incomplete, never "good" with its artifact gone), then
 * the verification record, globals and the artifact.
 */
function deleteOrder(copy: CopyInfo): string[] {
  // The run record goes last: until then a half-deleted copy is still known to be pgbak's.
  return [copy.manifest, copy.verification, copy.globals, copy.artifact, ...copy.others, copy.run]
    .filter((o) => o !== undefined)
    .map((o) => o.key);
}

/** True only for a root-level pgbak key of exactly this backup (and so of this job's prefix). */
function isOwnKey(key: string, name: string, prefix: string): boolean {
  // A directory-format backup's files (`<name>.dir/…`) are the only keys below the root that are its.
  const parsed = key.includes('/') ? parseDirectoryKey(key) : parseKey(key);
  return parsed !== undefined && parsed.prefix === prefix && parsed.base === name;
}

/** The local `<name>.dir` of a directory-format backup (BACKUP_JOBS), once emptied; rmdir leaves a non-empty one. */
async function removeEmptyDirectory(backend: StorageBackend, name: string): Promise<void> {
  const path = backend.localPath(directoryKey(name, 'toc.dat'));
  if (path) await rmdir(dirname(path)).catch(() => undefined);
}

/** Is the run that wrote this backup over? Its manifest exists somewhere, or its process is gone from this host. */
function runIsOver(entry: CatalogEntry): boolean {
  const copies = [entry.locations.local, entry.locations.remote];
  if (copies.some((c) => c?.manifest)) return true;
  const run = copies.find((c) => c?.runData)?.runData;
  return run !== undefined && run.host === hostname() && run.pid !== process.pid && !processAlive(run.pid);
}

/** How retention sees the copy of `entry` in one location. */
function policyItem(entry: CatalogEntry, copy: CopyInfo, database: string, protect: readonly string[]): PolicyBackup {
  return {
    name: entry.name,
    database,
    time: entry.time,
    state: copy.state,
    detail: copy.problems.length ? copy.problems.join('; ') : undefined,
    leftover: copy.state === 'incomplete' && !copy.artifact && runIsOver(entry),
    goodElsewhere: copy.state === 'incomplete' && copy.artifact !== undefined && entry.state === 'good',
    protected: protect.includes(entry.name),
  };
}

/**
 * The bucket copies the policy removes but whose manifest records an Object Lock date still ahead:
 * kept, with the date as their reason (the server would refuse the delete anyway).
 */
function holdLocked(r: PolicyResult, entries: readonly CatalogEntry[], now: Date, locked: LockedCopy[]): PolicyResult {
  const keep = [...r.keep];
  const remove: Decision[] = [];
  for (const d of r.remove) {
    const until = entries.find((e) => e.name === d.name)?.locations.remote?.manifestData?.objectLock?.retainUntil;
    if (until !== undefined && Date.parse(until) > now.getTime()) {
      keep.push({ ...d, reasons: [`kept: under S3 Object Lock until ${until}`] });
      locked.push({ backup: d.name, location: 'remote', until });
    } else remove.push(d);
  }
  const newestFirst = (a: Decision, b: Decision) => b.time.getTime() - a.time.getTime() || b.name.localeCompare(a.name);
  return { keep: keep.sort(newestFirst), remove };
}

/** One decision per backup from the per-location ones: removed only when every location removes it. */
function combine(entries: readonly CatalogEntry[], byLocation: Partial<Record<LocationName, PolicyResult>>): PolicyResult {
  const keep: Decision[] = [];
  const remove: Decision[] = [];
  for (const e of entries) {
    const parts: { where: LocationName; d: Decision; removed: boolean }[] = [];
    for (const where of ['local', 'remote'] as const) {
      const r = byLocation[where];
      if (!r) continue;
      const kept = r.keep.find((d) => d.name === e.name);
      const gone = r.remove.find((d) => d.name === e.name);
      if (kept) parts.push({ where, d: kept, removed: false });
      else if (gone) parts.push({ where, d: gone, removed: true });
    }
    if (parts.length === 0) continue;
    const removed = parts.every((p) => p.removed);
    const same = parts.every((p) => p.removed === parts[0]!.removed && p.d.reasons.join() === parts[0]!.d.reasons.join());
    const reasons = same ? parts[0]!.d.reasons : parts.flatMap((p) => p.d.reasons.map((r) => `${p.where}: ${r}`));
    (removed ? remove : keep).push({ name: e.name, database: parts[0]!.d.database, time: e.time, state: e.state, reasons });
  }
  return { keep, remove };
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

  if (job.retention.keepMin < 1) {
    // With 0, RETENTION_DAYS=0 would remove every backup, the one just made included.
    throw new ConfigError([
      `BACKUP_KEEP_MIN: must be 1 or more (got ${job.retention.keepMin}): retention never removes the last good backup`,
    ]);
  }
  const own = ownBackups(await listBackups({ local, remote, prefix: job.filePrefix, reads: options.reads }), {
    database: job.database,
    systemIdentifier: options.systemIdentifier,
  });
  const servers = own.ambiguousServers;
  if (servers.length > 0) {
    throw new AppError(
      'identity-ambiguous',
      `prune: ${job.filePrefix} holds backups of ${job.database} from ${servers.length} different servers (system identifiers ${servers.join(', ')}), and this run cannot tell which server is its own`,
      {
        hint: 'run prune where the database server is reachable (it reads its identifier), and give each server its own STORAGE_PREFIX',
      },
    );
  }
  const entries = own.mine;
  const warnings: string[] = [];
  const others = otherServersWarning(job.database, own.ofDatabase, own.mine, remote ? 'the bucket prefix' : 'BACKUP_DIR');
  if (others) {
    warnings.push(others);
    log.warn(others);
  }
  const byName = new Map(entries.map((e) => [e.name, e]));
  const policy = { database: job.database, ...job.retention };
  const protect = options.protect ?? [];
  const byLocation: Partial<Record<LocationName, PolicyResult>> = {};
  for (const where of ['local', 'remote'] as const) {
    if (!(where === 'local' ? local : remote)) continue;
    const items = entries.flatMap((e) => (e.locations[where] ? [policyItem(e, e.locations[where]!, job.database, protect)] : []));
    byLocation[where] = applyPolicy(items, policy, now);
  }
  const locked: LockedCopy[] = [];
  if (byLocation.remote) byLocation.remote = holdLocked(byLocation.remote, entries, now, locked);
  let missingPermission: string | undefined;
  const decisions = combine(entries, byLocation);

  for (const d of decisions.keep) log.debug(d.reasons.join('; '), { backup: d.name });
  const backends: Record<LocationName, StorageBackend | undefined> = { local, remote };
  const planned: DeletedKey[] = [];
  const deleted: DeletedKey[] = [];
  const errors: string[] = [];

  // Oldest first: an interrupted run leaves the newer backups.
  for (const d of [...decisions.remove, ...decisions.keep].sort((a, b) => a.time.getTime() - b.time.getTime())) {
    const entry = byName.get(d.name)!;
    const goesFrom = (['local', 'remote'] as const).filter((w) => byLocation[w]?.remove.some((x) => x.name === d.name));
    if (goesFrom.length === 0) continue;
    const whereText = goesFrom.length === Object.keys(byLocation).length ? '' : ` (${goesFrom.join(', ')} copy)`;
    log.info(`${dryRun ? 'would remove' : 'removing'} ${d.name}${whereText}: ${d.reasons.join('; ')}`, { backup: d.name });
    for (const location of goesFrom) {
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
          if (err instanceof ObjectLockedError) {
            // The manifest did not record the lock (or a legal hold): kept, never an error.
            locked.push({ backup: d.name, location, until: err.retainUntil?.toISOString() });
            log.info(err.message, { backup: d.name, location });
            // A locked manifest keeps the whole backup; a locked key of a leftover keeps only itself.
            if (copy.manifest && key === copy.manifest.key) break;
            continue;
          }
          if (err instanceof AppError && err.code === 'storage-permission') {
            missingPermission ??= /s3:\w+/.exec(err.message)?.[0];
          }
          const message = `cannot delete ${backend.urlOf(key)}: ${messageOf(err)}`;
          errors.push(message);
          log.error(message, { backup: d.name, location });
          // Never delete the artifact while its manifest may still claim a good backup.
          if (copy.manifest && key === copy.manifest.key) break;
        }
      }
      await removeEmptyDirectory(backend, d.name);
    }
  }
  const finished = new Set(entries.filter(runIsOver).map((e) => e.name));
  const leftovers = await removeLeftovers({ filePrefix: job.filePrefix, local, remote, now, dryRun, log, errors, finished });
  log.info(dryRun ? 'prune dry run done' : 'prune done', {
    kept: decisions.keep.length,
    removed: decisions.remove.length,
    deleted: deleted.length,
    errors: errors.length,
  });
  for (const l of locked) log.info(`kept ${l.backup} in the bucket: under S3 Object Lock until ${l.until ?? 'its legal hold is lifted'}`);
  return { decisions, byLocation, deleted, planned, errors, locked, missingPermission, warnings, dryRun, leftovers };
}
