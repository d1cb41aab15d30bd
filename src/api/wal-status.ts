import { isAppError } from '../errors/index.js';
import type { WalMetricsState } from '../metrics/metrics.js';
import { formatDuration } from '../model/human-units.js';
import type { JobStorage } from '../storage/job-storage.js';
import { basePrefix } from '../wal/base-manifest.js';
import { listBaseVerifications } from '../wal/base-verification.js';
import { archiveLocation, listArchived, readMarker } from '../wal/wal-archive.js';
import { newerFailures, readPushFailures } from '../wal/wal-push-failures.js';
import { walBackend } from './wal-job.js';

/** The WAL archive as `status` judges it: the newest archived segment against WAL_RPO, and wal-push failures. */
export interface WalArchiveStatus {
  readonly location: string;
  readonly systemIdentifier: string;
  readonly newestSegment: string | null;
  /** When the newest segment was stored (the storage's time). */
  readonly storedAt: string | null;
  readonly ageMs: number | null;
  readonly rpoMs: number;
  readonly ok: boolean;
  /** Why not ok (null when ok). */
  readonly reason: string | null;
  /** wal-push failures recorded in BACKUP_DIR and the archive (wal/push-failures.json); null when none ever. */
  readonly failures: {
    readonly count: number;
    readonly lastFailureAt: string;
    readonly lastFile: string | null;
    readonly lastError: string;
    /** The last failure is later than the newest archived segment: archive_command is failing now. */
    readonly failing: boolean;
  } | null;
  /** When the newest base backup was completed (its manifest stored), null when there is none. */
  readonly newestBaseBackupAt: string | null;
}

/** The WAL archive of a job's storage, or null when it has none (no archive_command = pgbak wal-push). */
export async function walArchiveStatus(storage: JobStorage, rpoMs: number, now: Date): Promise<WalArchiveStatus | null> {
  const archive = walBackend(storage);
  const marker = await readMarker(archive);
  if (!marker) return null;
  const newest = (await listArchived(archive, marker.systemIdentifier))
    .filter((a) => a.file.kind === 'segment' || a.file.kind === 'partial')
    .sort((a, b) => a.modified.getTime() - b.modified.getTime())
    .pop();
  const ageMs = newest ? Math.max(0, now.getTime() - newest.modified.getTime()) : null;
  const reason =
    ageMs === null
      ? `no WAL segment archived in ${archiveLocation(archive)}`
      : ageMs >= rpoMs
        ? `WAL archive stale: newest segment ${newest!.file.name} was stored ${formatDuration(ageMs)} ago (WAL_RPO ${formatDuration(rpoMs)}); check archive_command and pg_stat_archiver`
        : null;
  const f = await pushFailures(storage);
  const failures = f
    ? {
        count: f.count,
        lastFailureAt: f.lastFailureAt,
        lastFile: f.lastFile,
        lastError: f.lastError.message,
        failing: !newest || Date.parse(f.lastFailureAt) > newest.modified.getTime(),
      }
    : null;
  return {
    location: archiveLocation(archive),
    systemIdentifier: marker.systemIdentifier,
    newestSegment: newest?.file.name ?? null,
    storedAt: newest?.modified.toISOString() ?? null,
    ageMs,
    rpoMs,
    ok: reason === null,
    reason,
    failures,
    newestBaseBackupAt: await newestBaseBackupAt(storage, marker.systemIdentifier),
  };
}

/** The failure line `status` shows (a warning: staleness is the failing condition). */
export function failuresWarning(wal: WalArchiveStatus): string | null {
  const f = wal.failures;
  if (!f?.failing) return null;
  return `archive_command is failing: ${f.count} failed wal-push call(s) recorded, the last at ${f.lastFailureAt}${f.lastFile ? ` (${f.lastFile})` : ''}: ${f.lastError}`;
}

/** The metrics of a WAL archive status. */
export function walMetricsOf(wal: WalArchiveStatus): WalMetricsState {
  return {
    lastArchivedAt: wal.storedAt,
    rpoMs: wal.rpoMs,
    failures: wal.failures?.count ?? 0,
    lastFailureAt: wal.failures?.lastFailureAt ?? null,
    basebackupLastSuccessAt: wal.newestBaseBackupAt,
  };
}

async function pushFailures(storage: JobStorage) {
  const archive = walBackend(storage);
  const backends = archive === storage.local ? [archive] : [storage.local, archive];
  let newest;
  for (const b of backends) {
    try {
      newest = newerFailures(newest, await readPushFailures(b));
    } catch (err) {
      if (isAppError(err) && err.code === 'interrupted') throw err;
      // An unreadable copy: the other one (or none) says what is known.
    }
  }
  return newest;
}

/** The newest base backup manifest's time in either location (a listing, nothing downloaded). */
async function newestBaseBackupAt(storage: JobStorage, sysid: string): Promise<string | null> {
  let newest = 0;
  for (const b of [storage.local, ...(storage.remote ? [storage.remote] : [])]) {
    try {
      for await (const o of b.list(basePrefix(sysid))) if (o.key.endsWith('.json')) newest = Math.max(newest, o.modified.getTime());
    } catch (err) {
      if (isAppError(err) && err.code === 'interrupted') throw err;
    }
  }
  return newest ? new Date(newest).toISOString() : null;
}

/** One restore test, as `status` and the dashboard list them. */
export interface RestoreTestSummary {
  readonly backup: string;
  readonly at: string;
  readonly ok: boolean;
  readonly durationMs: number;
}

/** The restore tests of the cluster's base backups (`verify --restore-test`), newest first, from every location. */
export async function baseRestoreTests(storage: JobStorage, systemIdentifier: string): Promise<RestoreTestSummary[]> {
  const byName = new Map<string, RestoreTestSummary>();
  for (const b of [storage.local, ...(storage.remote ? [storage.remote] : [])]) {
    for (const r of await listBaseVerifications(b, systemIdentifier).catch(() => [])) {
      if (r.kind !== 'restore-test') continue;
      const prev = byName.get(r.name);
      if (!prev || prev.at < r.verifiedAt) byName.set(r.name, { backup: r.name, at: r.verifiedAt, ok: r.ok, durationMs: r.durationMs });
    }
  }
  return [...byName.values()].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
}
