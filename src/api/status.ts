import { listBackups, ownBackups, type BackupIdentity, type CatalogEntry, type LocationName } from '../catalog/catalog.js';
import { lastRunPrefixes, newerRecord, readLastRun, readRetirement, type LastRunRecord } from '../catalog/last-run.js';
import { resolveStorage, type JobConfig } from '../config/job.js';
import type { Settings } from '../config/schema.js';
import { judgeSize, SIZE_HISTORY_WINDOW, type SizeJudgement } from '../catalog/size-trend.js';

import { isAppError, messageOf } from '../errors/index.js';
import { targetCurrency } from './target-currency.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import type { BackupResult } from '../model/backup-result.js';
import { CatalogSource, futureWarning, isFromTheFuture, newestPerServer } from '../catalog/find-backup.js';
import { jobIdentity } from './identity.js';
import { otherServersWarning } from '../catalog/other-servers.js';
import { destinationOf } from './report-run.js';
import { formatDuration } from '../model/human-units.js';
import { baseRestoreTests, failuresWarning, walArchiveStatus, type WalArchiveStatus } from './wal-status.js';

/**
 * `pgbak status`: the state of each database's backups, read from storage alone (BACKUP_DIR and
 * the bucket: the catalog and the last-run record), never from the database. Healthy when the
 * newest good backup is younger than BACKUP_RPO and the last run succeeded.
 */

/** What status looks at: one database in one place. */
export interface StatusTarget {
  readonly job: string;
  readonly database: string;
  readonly filePrefix: string;
  readonly storage: Pick<JobConfig, 'backupDir' | 's3' | 'extraTargets'>;
  /** BACKUP_RPO in ms. */
  readonly rpoMs: number;
  /** BACKUP_SIZE_TOLERANCE as a fraction. */
  readonly sizeTolerance: number;
  /** WAL_RPO in ms: the WAL archive's newest segment must be younger (when there is a WAL archive). */
  readonly walRpoMs?: number | undefined;
}

export interface BackupSummary {
  readonly name: string;
  /** Start of the backup (the manifest's startedAt). */
  readonly time: string;
  readonly sizeBytes: number;
}

/** The state of one database. */
export interface DatabaseStatus {
  readonly job: string;
  readonly database: string;
  /** Newest good backup younger than the RPO, and the last run succeeded (or none is known). */
  readonly ok: boolean;
  /** Why not ok, one line each (empty when ok). */
  readonly reasons: readonly string[];
  /** Worth saying, not failing: the bucket could not be read (BACKUP_DIR alone was used), a backup dated ahead of the clock. */
  readonly warnings: readonly string[];
  readonly rpoMs: number;
  readonly destination: string;
  readonly newestGood: (BackupSummary & { readonly ageMs: number; readonly locations: readonly LocationName[] }) | null;
  /** From the last-run record (the newer of BACKUP_DIR's and the bucket's). */
  readonly lastRun: {
    readonly status: BackupResult['status'];
    readonly backup: string | null;
    readonly startedAt: string;
    readonly finishedAt: string;
    readonly durationMs: number;
    readonly error: BackupResult['error'] | null;
    readonly warnings: readonly string[];
    readonly host: string;
  } | null;
  /** The newest verification record of kind restore-test. */
  readonly lastRestoreTest: { readonly backup: string; readonly at: string; readonly ok: boolean; readonly durationMs: number } | null;
  /** The last good backups, newest first, and the newest one's size judged against the others. */
  readonly sizeTrend: { readonly backups: readonly BackupSummary[]; readonly judgement: SizeJudgement | null };
  readonly backups: { readonly good: number; readonly incomplete: number; readonly corrupt: number };
  /** Point-in-time recovery: the WAL archive in the same storage, or null when there is none. */
  readonly wal?: WalArchiveStatus | null;
}

export interface StatusReport {
  /** Every database ok. */
  readonly ok: boolean;
  readonly checkedAt: string;
  readonly databases: readonly DatabaseStatus[];
}

/** The status target of a configured job. */
export function jobTarget(job: JobConfig): StatusTarget {
  return {
    job: job.name,
    database: job.database,
    filePrefix: job.filePrefix,
    storage: { backupDir: job.backupDir, s3: job.s3, extraTargets: job.extraTargets },
    rpoMs: job.health.rpoMs,
    sizeTolerance: job.health.sizeTolerance,
    walRpoMs: job.wal.rpoMs,
  };
}

/** What storage holds of one target; `problems` names each location that could not be read. */
interface StoredState {
  readonly entries: readonly CatalogEntry[];
  readonly record: LastRunRecord | undefined;
  readonly problems: readonly string[];
  /** Not a reason to fail: the bucket could not be read (BACKUP_DIR alone was used). */
  readonly warnings: readonly string[];
  readonly identity: BackupIdentity;
}

type Backends = readonly (readonly [string, StorageBackend])[];

function backendsOf({ local, remote }: JobStorage): Backends {
  const backends: [string, StorageBackend][] = [[local.location, local]];
  if (remote) backends.push([remote.location, remote]);
  return backends;
}

/**
 * Catalog entries of `prefix` (all prefixes when undefined), from the readable backends: an
 * unreadable bucket is one warning and BACKUP_DIR alone is used (CatalogSource, as restore and
 * verify do); an unreadable BACKUP_DIR is a problem, and the bucket alone is used.
 */
async function readCatalog(
  backends: Backends,
  prefix: string | undefined,
  problems: string[],
  warnings: string[],
): Promise<{ entries: CatalogEntry[]; readable: Backends }> {
  const [localPair, remotePair] = [backends[0], backends[1]];
  const source = new CatalogSource({ local: localPair?.[1], remote: remotePair?.[1] });
  try {
    const entries = await source.list(prefix);
    for (const w of source.warnings) if (!warnings.includes(w)) warnings.push(w);
    return { entries, readable: source.bucketError ? backends.slice(0, 1) : backends };
  } catch (err) {
    if (isAppError(err) && err.code === 'interrupted') throw err;
    // BACKUP_DIR cannot be read (or neither can): say so, and use the bucket alone.
    problems.push(`cannot read ${localPair?.[0] ?? 'BACKUP_DIR'}: ${messageOf(err)}`);
    if (!remotePair) return { entries: [], readable: [] };
    try {
      return { entries: await listBackups({ remote: remotePair[1], prefix }), readable: [remotePair] };
    } catch (e) {
      problems.push(`cannot read ${remotePair[0]}: ${messageOf(e)}`);
      return { entries: [], readable: [] };
    }
  }
}

async function readRecord(backends: Backends, prefix: string, problems: string[]): Promise<LastRunRecord | undefined> {
  let newest: LastRunRecord | undefined;
  for (const [where, backend] of backends) {
    try {
      newest = newerRecord(newest, await readLastRun(backend, prefix));
    } catch (err) {
      const problem = `cannot read ${where}: ${messageOf(err)}`;
      if (!problems.includes(problem)) problems.push(problem);
    }
  }
  return newest;
}

/**
 * The state of one database from its stored backups and last-run record. `storage` is the
 * target's open storage; opened (and released) here when absent.
 */
export async function databaseStatus(
  target: StatusTarget,
  now: Date = new Date(),
  signal?: AbortSignal,
  storage?: JobStorage,
): Promise<DatabaseStatus> {
  await using opened = openStorage(target.storage, { signal, shared: storage });
  const backends = backendsOf(opened);
  const problems: string[] = [];
  const warnings: string[] = [];
  const { entries, readable } = await readCatalog(backends, target.filePrefix, problems, warnings);
  const record = await readRecord(readable, target.filePrefix, problems);
  // Whose backups: this database, and the server this host's last run recorded (status never asks the server).
  const identity = await jobIdentity(
    { database: target.database, filePrefix: target.filePrefix },
    { local: opened.local, askServer: false },
  );
  let judged = judge(target, { entries, record, problems, warnings, identity }, now);
  if (opened.extra?.length) {
    // Further targets (STORAGE_2_*): each bucket must hold a good backup younger than the RPO.
    const primaryNewest = entries.find((e) => e.state === 'good' && e.database === target.database && e.locations.remote?.state === 'good');
    const reason = await targetCurrency({
      storage: opened,
      filePrefix: target.filePrefix,
      database: target.database,
      rpoMs: target.rpoMs,
      now,
      primaryNewest: primaryNewest?.time,
    });
    if (reason) judged = { ...judged, ok: false, reasons: [...judged.reasons, reason] };
  }
  // The WAL archive lives in the same storage: when the catalog could not read all of it, that is said already.
  if (target.walRpoMs === undefined || readable.length < backends.length) return judged;
  let wal: WalArchiveStatus | null;
  try {
    wal = await walArchiveStatus(opened, target.walRpoMs, now);
  } catch (err) {
    if (isAppError(err) && err.code === 'interrupted') throw err;
    return { ...judged, warnings: [...judged.warnings, `cannot read the WAL archive: ${messageOf(err)}`], wal: null };
  }
  if (!wal) return { ...judged, wal };
  const failing = failuresWarning(wal);
  // The newest restore test may be a base backup's (verify --restore-test of a job with a WAL archive).
  const baseTest = (await baseRestoreTests(opened, wal.systemIdentifier))[0];
  const tested =
    baseTest && (!judged.lastRestoreTest || Date.parse(baseTest.at) > Date.parse(judged.lastRestoreTest.at))
      ? { ...judged, lastRestoreTest: baseTest }
      : judged;
  const warned = failing ? { ...tested, warnings: [...tested.warnings, failing] } : tested;
  if (!wal.reason) return { ...warned, wal };
  return { ...warned, ok: false, reasons: [...warned.reasons, wal.reason], wal };
}

/** The status of every target (sequentially: they usually share one bucket). */
export async function status(options: { targets: readonly StatusTarget[]; now?: Date; signal?: AbortSignal }): Promise<StatusReport> {
  const now = options.now ?? new Date();
  const databases: DatabaseStatus[] = [];
  for (const t of options.targets) databases.push(await databaseStatus(t, now, options.signal));
  return { ok: databases.every((d) => d.ok), checkedAt: now.toISOString(), databases };
}

/**
 * Without a configured database (a host with storage variables only): every database that has
 * backups or a last-run record in BACKUP_DIR or the bucket, one target per file prefix, named
 * after the database in its newest manifest or record.
 */
export async function discoverTargets(settings: Settings, options: { cwd: string }): Promise<StatusTarget[]> {
  const storage = resolveStorage(settings, options);
  await using opened = openStorage(storage);
  const backends = backendsOf(opened);
  const problems: string[] = [];
  const { entries } = await readCatalog(backends, undefined, problems, []);
  const prefixes = new Set(entries.map((e) => e.prefix));
  for (const [, backend] of backends) {
    for (const p of await lastRunPrefixes(backend).catch(() => [])) prefixes.add(p);
  }
  const targets: StatusTarget[] = [];
  for (const prefix of [...prefixes].sort()) {
    if (await isRetired(backends, prefix, entries)) continue;
    const manifest = entries.find((e) => e.prefix === prefix && e.manifest)?.manifest;
    const record = manifest ? undefined : await readRecord(backends, prefix, []);
    const database = manifest?.database ?? record?.database ?? prefix;
    targets.push({
      job: manifest?.job ?? record?.job ?? database,
      database,
      filePrefix: prefix,
      storage,
      rpoMs: settings.BACKUP_RPO,
      sizeTolerance: settings.BACKUP_SIZE_TOLERANCE,
      walRpoMs: settings.WAL_RPO,
    });
  }
  if (targets.length === 0 && problems.length > 0) {
    // Nothing readable at all: report it as one unknown database rather than "nothing to check".
    return [
      {
        job: '(unknown)',
        database: '(unknown)',
        filePrefix: '',
        storage,
        rpoMs: settings.BACKUP_RPO,
        sizeTolerance: settings.BACKUP_SIZE_TOLERANCE,
      },
    ];
  }
  return targets;
}

/**
 * Retired by `pgbak status --forget` (in any backend), and nothing of it is newer than that: no
 * backup started and no run recorded after the retirement.
 */
async function isRetired(backends: Backends, prefix: string, entries: readonly CatalogEntry[]): Promise<boolean> {
  let retiredAt = Number.NEGATIVE_INFINITY;
  for (const [, backend] of backends) {
    const r = await readRetirement(backend, prefix).catch(() => undefined);
    if (r) retiredAt = Math.max(retiredAt, Date.parse(r.retiredAt));
  }
  if (retiredAt === Number.NEGATIVE_INFINITY) return false;
  if (entries.some((e) => e.prefix === prefix && e.time.getTime() > retiredAt)) return false;
  const record = await readRecord(backends, prefix, []);
  return !record || Date.parse(record.recordedAt) <= retiredAt;
}

function summary(e: CatalogEntry): BackupSummary {
  return { name: e.name, time: e.time.toISOString(), sizeBytes: e.size };
}

function judge(target: StatusTarget, state: StoredState, now: Date): DatabaseStatus {
  const { ofDatabase, mine, ambiguousServers: servers } = ownBackups(state.entries, state.identity);
  const reasons = [...state.problems];
  const warnings = [...state.warnings];
  if (servers.length > 0) {
    reasons.push(
      `backups of ${target.database} from ${servers.length} different servers in ${destinationOf(target.storage)}, and this host cannot tell which is its own (${newestPerServer(ofDatabase).join('; ')}): give each server its own STORAGE_PREFIX`,
    );
  }
  const others = otherServersWarning(target.database, ofDatabase, mine, destinationOf(target.storage));
  if (others && servers.length === 0) warnings.push(others);
  const future = mine.filter((e) => isFromTheFuture(e, now));
  for (const e of future.filter((x) => x.state === 'good')) warnings.push(futureWarning(e, now));
  const good = mine.filter((e) => e.state === 'good' && !isFromTheFuture(e, now));
  const newest = good[0];
  const rpo = formatDuration(target.rpoMs);

  let newestGood: DatabaseStatus['newestGood'] = null;
  if (!newest) {
    reasons.push(`no good backup in ${destinationOf(target.storage)}`);
  } else {
    const ageMs = Math.max(0, now.getTime() - newest.time.getTime());
    const locations = (['local', 'remote'] as const).filter((w) => newest.locations[w]?.state === 'good');
    newestGood = { ...summary(newest), ageMs, locations };
    if (ageMs >= target.rpoMs) reasons.push(`stale: newest good backup ${newest.name} is ${formatDuration(ageMs)} old (BACKUP_RPO ${rpo})`);
  }

  const r = state.record?.result;
  const lastRun: DatabaseStatus['lastRun'] = r
    ? {
        status: r.status,
        backup: r.name ?? null,
        startedAt: r.startedAt,
        finishedAt: r.finishedAt,
        durationMs: r.durationMs,
        error: r.error ?? null,
        warnings: r.warnings ?? [],
        host: state.record!.host,
      }
    : null;
  // A failed last run is always a problem: a good backup dated after it is no proof that a later
  // run succeeded (it may come from a clock that was ahead, or from another host).
  if (r && r.status !== 'ok' && r.status !== 'dry-run') {
    const what = r.status === 'partial' ? 'partly failed (local copy only)' : 'failed';
    reasons.push(`last run ${what} at ${r.finishedAt}${r.error ? `: ${r.error.message}` : ''}`);
  }

  const tests = mine
    .filter((e) => e.verification?.kind === 'restore-test')
    .sort((a, b) => Date.parse(b.verification!.verifiedAt) - Date.parse(a.verification!.verifiedAt));
  const t = tests[0];
  const lastRestoreTest = t
    ? { backup: t.name, at: t.verification!.verifiedAt, ok: t.verification!.ok, durationMs: t.verification!.durationMs }
    : null;

  const trend = good.slice(0, SIZE_HISTORY_WINDOW + 1);
  const judgement =
    trend.length > 0
      ? judgeSize(
          trend[0]!.size,
          trend.slice(1).map((e) => e.size),
          target.sizeTolerance,
        )
      : null;

  return {
    job: target.job,
    database: target.database,
    ok: reasons.length === 0,
    reasons,
    warnings,
    rpoMs: target.rpoMs,
    destination: destinationOf(target.storage),
    newestGood,
    lastRun,
    lastRestoreTest,
    sizeTrend: { backups: trend.map(summary), judgement },
    backups: {
      good: good.length,
      incomplete: mine.filter((e) => e.state === 'incomplete').length,
      corrupt: mine.filter((e) => e.state === 'corrupt').length,
    },
  };
}
