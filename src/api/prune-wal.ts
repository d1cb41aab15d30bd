import type { JobConfig } from '../config/job.js';
import { messageOf } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { applyPolicy, type Decision } from '../retention/policy.js';
import type { JobStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { type BaseManifest, basePrefix, baseManifestKey, listBaseManifests } from '../wal/base-manifest.js';
import { listArchived, readMarker } from '../wal/wal-archive.js';
import { DEFAULT_SEGMENT_SIZE } from '../wal/wal-names.js';
import { planWalRetention } from '../wal/wal-retention.js';
import { walBackend } from './wal-job.js';

type Location = 'local' | 'remote';

/** A file the WAL/base-backup prune deleted (or, dry, would delete): `backup` is the base backup's name, or `wal`. */
export interface WalPrunedFile {
  readonly backup: string;
  readonly location: Location;
  readonly key: string;
  readonly path: string;
}

/** Retention of the point-in-time archive: base backups by the dumps' policy, then the WAL no kept base backup needs. */
export interface WalPruneResult {
  readonly systemIdentifier: string;
  /** Base backups, newest first: removed when every location that holds one removes it. */
  readonly baseBackups: { readonly keep: readonly Decision[]; readonly remove: readonly Decision[] };
  /** The start segment of the oldest kept base backup: older WAL goes. Null when no base backup is kept. */
  readonly walCutoff: string | null;
  /** Archived WAL files removed (or, dry, to remove). */
  readonly walRemoved: number;
  readonly files: readonly WalPrunedFile[];
  readonly errors: readonly string[];
  readonly warnings: readonly string[];
}

/**
 * `pgbak prune` for the WAL archive and base backups (`wal/`, `base/`). Nothing when the job has
 * no WAL archive. Base backups go by RETENTION_DAYS, BACKUP_KEEP_MIN and GFS (retention/policy.ts,
 * the same function as dumps), their manifest first; then the archived WAL older than the start
 * of the oldest kept base backup, unless a base backup could not be deleted (then its WAL stays).
 */
export async function pruneWal(
  job: Pick<JobConfig, 'database' | 'retention'>,
  storage: JobStorage,
  options: { dryRun: boolean; now: Date; logger: Logger },
): Promise<WalPruneResult | undefined> {
  const archive = walBackend(storage);
  const marker = await readMarker(archive);
  if (!marker) return undefined;
  const sysid = marker.systemIdentifier;
  const log = options.logger.child({ stage: 'prune-wal' });
  const policy = { database: job.database, ...job.retention };
  const backends: Partial<Record<Location, StorageBackend>> = { local: storage.local, remote: storage.remote };
  const manifests = new Map<string, BaseManifest>();
  const per: { where: Location; backend: StorageBackend; keep: Set<string>; remove: Decision[] }[] = [];
  const decided = new Map<string, Decision>();
  for (const where of ['local', 'remote'] as const) {
    const backend = backends[where];
    if (!backend) continue;
    const found = await listBaseManifests(backend, sysid);
    for (const m of found) manifests.set(m.name, m);
    const items = found.map((m) => ({ name: m.name, database: job.database, time: new Date(m.stopTime), state: 'good' as const }));
    const r = applyPolicy(items, policy, options.now);
    for (const d of [...r.keep, ...r.remove]) if (!decided.has(d.name) || r.keep.includes(d)) decided.set(d.name, d);
    per.push({ where, backend, keep: new Set(r.keep.map((d) => d.name)), remove: [...r.remove] });
  }
  const keptAnywhere = new Set(per.flatMap((p) => [...p.keep]));
  const files: WalPrunedFile[] = [];
  const errors: string[] = [];
  const drop = async (backend: StorageBackend, where: Location, backup: string, key: string): Promise<boolean> => {
    files.push({ backup, location: where, key, path: backend.urlOf(key) });
    if (options.dryRun) return true;
    try {
      await backend.delete(key);
      return true;
    } catch (err) {
      const message = `cannot delete ${backend.urlOf(key)}: ${messageOf(err)}`;
      errors.push(message);
      log.error(message, { backup, location: where });
      return false;
    }
  };
  // Oldest first; the manifest before the artifact, so a half-deleted base backup never counts as good.
  for (const p of per) {
    for (const d of [...p.remove].reverse()) {
      log.info(`${options.dryRun ? 'would remove' : 'removing'} base backup ${d.name} (${p.where}): ${d.reasons.join('; ')}`);
      if (!(await drop(p.backend, p.where, d.name, baseManifestKey(sysid, d.name)))) continue;
      const rest: string[] = [];
      for await (const o of p.backend.list(`${basePrefix(sysid)}${d.name}.`)) if (!o.key.endsWith('.json')) rest.push(o.key);
      for (const key of rest) await drop(p.backend, p.where, d.name, key);
    }
  }
  const kept = [...manifests.values()].filter((m) => keptAnywhere.has(m.name));
  const archived = await listArchived(archive, sysid);
  const plan = planWalRetention(archived, kept, marker.segmentSize ?? DEFAULT_SEGMENT_SIZE);
  const warnings = [...plan.warnings];
  for (const w of warnings) log.warn(w);
  let walRemoved = 0;
  if (errors.length > 0 && plan.remove.length > 0) {
    warnings.push('WAL kept: a base backup could not be deleted, so the WAL it needs stays until the next prune');
  } else {
    const where: Location = storage.remote ? 'remote' : 'local';
    if (plan.remove.length)
      log.info(`${options.dryRun ? 'would remove' : 'removing'} ${plan.remove.length} WAL file(s) older than ${plan.cutoff}`);
    for (const a of plan.remove) if (await drop(archive, where, 'wal', a.key)) walRemoved++;
  }
  const byTime = (a: Decision, b: Decision) => b.time.getTime() - a.time.getTime();
  const all = [...decided.values()].sort(byTime);
  return {
    systemIdentifier: sysid,
    baseBackups: { keep: all.filter((d) => keptAnywhere.has(d.name)), remove: all.filter((d) => !keptAnywhere.has(d.name)) },
    walCutoff: plan.cutoff ?? null,
    walRemoved,
    files,
    errors,
    warnings,
  };
}
