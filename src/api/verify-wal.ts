import { AppError, ExitCode, NotFoundError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import { type BaseManifest, listBaseManifests } from '../wal/base-manifest.js';
import { archiveLocation, listArchived, readMarker } from '../wal/wal-archive.js';
import { type ChainStretch, checkChain } from '../wal/wal-chain.js';
import { DEFAULT_SEGMENT_SIZE, parseHistory, type TimelineSwitch } from '../wal/wal-names.js';
import { readArchivedText } from '../wal/wal-read.js';
import { walBackend, type WalJob } from './wal-job.js';

export interface WalVerifyReport {
  readonly ok: boolean;
  readonly systemIdentifier: string;
  readonly location: string;
  /** The oldest base backup the chain starts at. */
  readonly baseBackup: string;
  readonly stretches: readonly ChainStretch[];
  readonly firstGap: string | null;
  readonly conflicts: readonly string[];
  /** The newest archived segment and when it was stored. */
  readonly newestSegment: { readonly name: string; readonly storedAt: string } | null;
  /** Why it is not ok (empty when ok). */
  readonly problems: readonly string[];
}

/**
 * `pgbak verify --wal`: is every segment a restore could need in the archive? The chain runs from
 * the oldest base backup's start to the newest archived segment, across timelines by their
 * `.history` files. The answer is the first missing segment (a gap) or name archived with two
 * contents; listing only, nothing is downloaded but the history files.
 */
export async function verifyWal(options: { job: WalJob; logger: Logger; signal?: AbortSignal | undefined }): Promise<WalVerifyReport> {
  await using storage = openStorage(options.job, { signal: options.signal });
  const report = await checkWalArchive(storage, options.signal);
  for (const p of report.problems) options.logger.error(p);
  return report;
}

/**
 * The check of {@link verifyWal} on an open storage (the dashboard runs it at each refresh).
 * Throws NotFoundError without a WAL archive, `no-base-backup` without a base backup.
 */
export async function checkWalArchive(storage: JobStorage, signal?: AbortSignal): Promise<WalVerifyReport> {
  const archive = walBackend(storage);
  const marker = await readMarker(archive);
  if (!marker)
    throw new NotFoundError(`there is no WAL archive at ${archiveLocation(archive)}`, {
      hint: "archive_command = 'pgbak wal-push %p' creates it",
    });
  const sysid = marker.systemIdentifier;
  const manifests = new Map<string, BaseManifest>();
  for (const b of [storage.local, ...(storage.remote ? [storage.remote] : [])])
    for (const m of await listBaseManifests(b, sysid)) manifests.set(m.name, m);
  const oldest = [...manifests.values()].sort((a, b) => (a.stopTime < b.stopTime ? -1 : 1))[0];
  if (!oldest) {
    throw new AppError('no-base-backup', `no base backup of the cluster ${sysid}: the WAL archive alone cannot be restored`, {
      exitCode: ExitCode.notFound,
      hint: 'run `pgbak basebackup`',
    });
  }
  const archived = await listArchived(archive, sysid);
  const histories = new Map<number, readonly TimelineSwitch[]>();
  for (const h of archived.filter((a) => a.file.kind === 'history'))
    histories.set(h.file.timeline, parseHistory(await readArchivedText(archive, h, signal)));
  const chain = checkChain(
    archived,
    histories,
    { timeline: oldest.timeline, segment: oldest.firstSegment },
    marker.segmentSize ?? DEFAULT_SEGMENT_SIZE,
  );
  const newest = archived
    .filter((a) => a.file.kind === 'segment')
    .sort((a, b) => a.modified.getTime() - b.modified.getTime())
    .pop();
  const problems = [
    ...(chain.firstGap ? [`${chain.firstGap} is missing from the WAL archive: a restore cannot replay past it`] : []),
    ...chain.conflicts.map((n) => `${n} is archived twice with different content`),
  ];
  return {
    ok: problems.length === 0,
    systemIdentifier: sysid,
    location: archiveLocation(archive),
    baseBackup: oldest.name,
    stretches: chain.stretches,
    firstGap: chain.firstGap ?? null,
    conflicts: chain.conflicts,
    newestSegment: newest ? { name: newest.file.name, storedAt: newest.modified.toISOString() } : null,
    problems,
  };
}
