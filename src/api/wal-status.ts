import { formatDuration } from '../model/human-units.js';
import type { JobStorage } from '../storage/job-storage.js';
import { archiveLocation, listArchived, readMarker } from '../wal/wal-archive.js';
import { walBackend } from './wal-job.js';

/** The WAL archive as `status` judges it: the newest archived segment against WAL_RPO. */
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
  return {
    location: archiveLocation(archive),
    systemIdentifier: marker.systemIdentifier,
    newestSegment: newest?.file.name ?? null,
    storedAt: newest?.modified.toISOString() ?? null,
    ageMs,
    rpoMs,
    ok: reason === null,
    reason,
  };
}
