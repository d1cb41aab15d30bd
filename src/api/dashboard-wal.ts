import type { WalOverview } from '../dashboard/view.js';
import { isAppError, messageOf } from '../errors/index.js';
import type { JobStorage } from '../storage/job-storage.js';
import { listBaseManifests, type BaseManifest } from '../wal/base-manifest.js';
import { checkWalArchive } from './verify-wal.js';
import type { WalArchiveStatus } from './wal-status.js';

/**
 * The dashboard's WAL section of one job: the newest archived segment (as `pgbak status` reads
 * it), the newest base backup, and the chain's state by the check of `pgbak verify --wal`. Read
 * at each cache refresh (listing only: nothing is downloaded but `.history` files).
 */
export async function walOverview(storage: JobStorage, status: WalArchiveStatus, signal?: AbortSignal): Promise<WalOverview> {
  const newestBase = await newestBaseBackup(storage, status.systemIdentifier);
  return {
    location: status.location,
    newestSegment: status.newestSegment,
    storedAt: status.storedAt,
    ageMs: status.ageMs,
    rpoMs: status.rpoMs,
    freshness: 'red', // set as of each answer (query.ts)
    newestBase: newestBase ? { name: newestBase.name, time: newestBase.stopTime, sizeBytes: newestBase.artifact.size } : null,
    chain: await chainOf(storage, signal),
  };
}

async function newestBaseBackup(storage: JobStorage, sysid: string): Promise<BaseManifest | undefined> {
  const all: BaseManifest[] = [];
  for (const b of [storage.local, ...(storage.remote ? [storage.remote] : [])])
    all.push(...(await listBaseManifests(b, sysid).catch(() => [])));
  return all.sort((a, b) => (a.stopTime < b.stopTime ? -1 : a.stopTime > b.stopTime ? 1 : 0)).pop();
}

async function chainOf(storage: JobStorage, signal?: AbortSignal): Promise<WalOverview['chain']> {
  const none = { from: null, segments: 0, firstGap: null, conflicts: [] };
  try {
    const r = await checkWalArchive(storage, signal);
    return {
      state: r.firstGap ? 'gap' : r.conflicts.length > 0 ? 'conflict' : 'complete',
      from: r.baseBackup,
      segments: r.stretches.reduce((n, s) => n + s.segments, 0),
      firstGap: r.firstGap,
      conflicts: r.conflicts,
      problem: r.problems[0] ?? null,
    };
  } catch (err) {
    if (isAppError(err) && err.code === 'interrupted') throw err;
    if (isAppError(err) && err.code === 'no-base-backup')
      return { state: 'no-base-backup', ...none, problem: err.hint ? `${err.message}: ${err.hint}` : err.message };
    return { state: 'unreadable', ...none, problem: `cannot check the WAL chain: ${messageOf(err)}` };
  }
}
