import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { link, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from '../logging/logger.js';
import { openStorage } from '../storage/job-storage.js';
import { identityOfDataDirectory } from '../wal/cluster-identity.js';
import { listArchived, readMarker, type ArchivedWal } from '../wal/wal-archive.js';
import { historyName, parseWalFileName, segmentName, segmentNumber } from '../wal/wal-names.js';
import { claimPrefetchWorker, KEPT_SUFFIX, markAbsent, prefetchDir } from '../wal/wal-prefetch.js';
import { processAlive } from '../model/process-alive.js';
import { fetchInto } from './wal-fetch.js';
import { walBackend, type WalJob } from './wal-job.js';

/**
 * The prefetch worker's limits: at most `count` segments fetched and not yet taken by PostgreSQL
 * (count × 16 MiB on disk), `parallel` downloads at once; with a recovery target time, at most
 * `pastTarget` segments archived after it. It re-lists the archive every `rescanMs` once it has
 * fetched everything listed (the end of the archive moves while a primary archives), and ends
 * when recovery has ended (recovery.signal is gone), after `idleMs` without PostgreSQL taking a
 * file, or after `lifeMs`; it then removes its directory. It keeps a second name (`.kept`) for the
 * last `kept` segments PostgreSQL took: it reads the segment recovery ended in once more.
 */
export const PREFETCH_WORKER = {
  count: 16,
  kept: 3,
  parallel: 2,
  pastTarget: 2,
  scanMs: 50,
  rescanMs: 2000,
  idleMs: 600_000,
  lifeMs: 6 * 3600_000,
  graceMs: 10_000,
} as const;

export interface PrefetchWorkerOptions {
  readonly job: WalJob;
  /** The data directory being recovered (it has recovery.signal). */
  readonly pgdata: string;
  /** The settings flags' signature (pushAheadSignature): the directory bin/pgbak-wal-fetch looks in. */
  readonly signature: string;
  /** The first segment PostgreSQL needs (the base backup's start segment); the worker follows its timeline. */
  readonly from: string;
  /** The restore that started the worker: while it runs, the data directory has no recovery.signal yet. */
  readonly restorePid?: number | undefined;
  /** The recovery target time, if any: the worker does not fetch far past it. */
  readonly until?: Date | undefined;
  readonly logger: Logger;
  /** Tests: other limits. */
  readonly limits?: Partial<Record<keyof typeof PREFETCH_WORKER, number>> | undefined;
}

/**
 * The restore-side twin of the push-ahead worker (pgBackRest's asynchronous archive-get does the
 * same): started detached by `pgbak restore --pgdata`, it lists the archive once and fetches the
 * segments of the base backup's timeline in order, from its start segment, decoded and sha256
 * checked, into pg_wal/pgbak_prefetch/<signature>/, keeping a bounded number ahead of PostgreSQL.
 * It also marks what its listing shows is not archived (the next timeline's history file, the
 * segment after the last one): restore_command answers those without node either. Anything it
 * does not hold (another timeline, a gap, a corrupt copy, a history file that exists) is left to
 * `pgbak wal-fetch`, which reports it. Returns how many segments it fetched.
 */
export async function runPrefetchWorker(o: PrefetchWorkerOptions): Promise<number> {
  const limits: Record<keyof typeof PREFETCH_WORKER, number> = { ...PREFETCH_WORKER, ...o.limits };
  const pgdata = resolve(o.pgdata);
  const first = parseWalFileName(o.from);
  const recovering = () => existsSync(join(pgdata, 'recovery.signal')) || (o.restorePid !== undefined && processAlive(o.restorePid));
  if (first?.kind !== 'segment' || !recovering()) return 0;
  const dir = prefetchDir(pgdata, o.signature);
  if (!(await claimPrefetchWorker(dir, o.signature))) return 0;
  const { logger } = o;
  const timeline = first.timeline;
  let fetched = 0;
  try {
    await using storage = openStorage(o.job);
    const backend = walBackend(storage);
    const marker = await readMarker(backend);
    if (!marker) return 0;
    const ours = await identityOfDataDirectory(pgdata).catch(() => undefined);
    if (ours && ours.systemIdentifier !== marker.systemIdentifier) return 0;
    const size = marker.segmentSize;
    let next = segmentNumber(o.from, size);
    let listing = new Map<string, ArchivedWal[]>();
    let listedAt = 0;
    // Segments with a second name `<name>.kept` (a hard link made as the file was fetched), and
    // the sha256 of the archived copy it holds.
    const kept = new Map<string, string>();
    const dropKept = async (name: string) => {
      kept.delete(name);
      await rm(join(dir, `${name}${KEPT_SUFFIX}`), { force: true });
    };
    const keep = async (name: string, file: string, sha256: string) => {
      await dropKept(name);
      try {
        await link(file, join(dir, `${name}${KEPT_SUFFIX}`));
        kept.set(name, sha256);
      } catch {
        // No second name (a file system without hard links): a repeated call asks again (.want).
      }
    };
    const relist = async () => {
      const all = await listArchived(backend, marker.systemIdentifier);
      listing = new Map();
      let newest = timeline;
      let last = -1n;
      for (const a of all) {
        listing.set(a.file.name, [...(listing.get(a.file.name) ?? []), a]);
        newest = Math.max(newest, a.file.timeline);
        if (a.file.kind === 'segment' && a.file.timeline === timeline) {
          const n = segmentNumber(a.file.name, size);
          if (n > last) last = n;
        }
      }
      listedAt = Date.now();
      // A kept copy answers only for the content this listing still shows under its name, alone.
      for (const [name, sha256] of kept) {
        const copies = listing.get(name) ?? [];
        if (copies.length === 0 || copies.some((c) => c.sha256 !== sha256)) await dropKept(name);
      }
      // Not archived: the history files of timelines up to the next one (PostgreSQL asks for the next
      // one and, at promotion, for its parent's), and the segment after the last one of the timeline
      // (nothing after it: the end of the archive, not a gap).
      const histories = Array.from({ length: Math.min(newest + 1, 64) }, (_, i) => historyName(newest + 1 - i)).filter(
        (h) => !listing.has(h),
      );
      await markAbsent(dir, [...histories, ...(last >= 0n ? [segmentName(timeline, last + 1n, size)] : [])]);
    };
    await relist();

    const started = Date.now();
    let progress = Date.now();
    let pastTarget = 0;
    let stopped = false;
    const delivered = new Set<string>();
    const running = new Set<Promise<void>>();
    const fetchOne = async (name: string, copy: ArchivedWal, want?: string) => {
      const pending = join(dir, `${name}.pending`);
      await writeFile(pending, '', { mode: 0o600 });
      if (want) await rm(join(dir, want), { force: true });
      const fetched = join(dir, `.${name}.${process.pid}.fetched`);
      try {
        await fetchInto(backend, copy, fetched, undefined, join(dir, `.${name}.${process.pid}.part`));
        // The second name, made before PostgreSQL can take the first: the repeated call for the
        // segment recovery ended in is answered from it (bin/pgbak-wal-fetch), no round trip.
        if (copy.file.kind === 'segment') await keep(name, fetched, copy.sha256);
        await rename(fetched, join(dir, name));
      } catch (err) {
        await rm(fetched, { force: true });
        throw err;
      } finally {
        await rm(pending, { force: true });
      }
    };
    let endedAt: number | undefined;
    const wanted = new Set<string>();
    while (Date.now() - started < limits.lifeMs) {
      // PostgreSQL removes recovery.signal just before it asks for its last files (the parent
      // timeline's history at promotion): serve a few seconds more.
      if (!existsSync(pgdata)) break;
      if (recovering()) endedAt = undefined;
      else if ((endedAt ??= Date.now()) < Date.now() - limits.graceMs) break;
      const present = new Set(await readdir(dir).catch(() => [] as string[]));
      // Files PostgreSQL asked for that the worker has not (again) in hand: a segment it takes a
      // second time (the one recovery stopped in), a history file that exists, another timeline.
      for (const f of present) {
        if (!f.endsWith('.want')) continue;
        const name = f.slice(0, -'.want'.length);
        if (wanted.has(name)) continue;
        const copies = listing.get(name) ?? [];
        if (copies.length === 0 || new Set(copies.map((c) => c.sha256)).size !== 1 || running.size >= limits.parallel + 2) {
          if (running.size < limits.parallel + 2) await rm(join(dir, f), { force: true });
          continue;
        }
        wanted.add(name);
        const p: Promise<void> = fetchOne(name, copies[0]!, f)
          .catch((err: unknown) =>
            logger.warn('could not prefetch a file PostgreSQL asked for', { file: name, error: (err as Error).message }),
          )
          .finally(() => {
            wanted.delete(name);
            running.delete(p);
          });
        running.add(p);
      }
      for (const n of delivered) {
        if (present.has(n)) continue;
        delivered.delete(n);
        progress = Date.now();
      }
      // Kept copies of the last segments taken only (an older one would hold disk space PostgreSQL freed).
      const taken = [...kept.keys()].filter((n) => !present.has(n) && !present.has(`${n}.pending`)).sort();
      for (const n of taken.slice(0, Math.max(0, taken.length - limits.kept))) await dropKept(n);
      while (!stopped && delivered.size + running.size < limits.count && running.size < limits.parallel) {
        const name = segmentName(timeline, next, size);
        const copies = listing.get(name);
        if (!copies) break;
        // Two different copies of one name: PostgreSQL's own call reports it.
        if (new Set(copies.map((c) => c.sha256)).size !== 1) {
          stopped = true;
          break;
        }
        const copy = copies[0]!;
        if (o.until && copy.modified.getTime() > o.until.getTime() && ++pastTarget > limits.pastTarget) {
          stopped = true;
          break;
        }
        next++;
        const p: Promise<void> = fetchOne(name, copy)
          .then(
            () => {
              delivered.add(name);
              fetched++;
            },
            (err: unknown) => {
              stopped = true;
              logger.warn('prefetch stopped; PostgreSQL fetches the next segments itself', { file: name, error: (err as Error).message });
            },
          )
          .finally(() => running.delete(p));
        running.add(p);
      }
      const drained = running.size === 0 && (stopped || !listing.has(segmentName(timeline, next, size)));
      if (drained && Date.now() - listedAt > limits.rescanMs) await relist();
      if (Date.now() - progress > limits.idleMs) break;
      await Promise.race([new Promise((r) => setTimeout(r, limits.scanMs)), ...running]);
    }
    await Promise.allSettled(running);
  } catch (err) {
    logger.warn('the WAL prefetch worker stopped; PostgreSQL fetches each file itself', { error: (err as Error).message });
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
  if (fetched > 0) logger.info('WAL prefetch worker done', { segments: fetched });
  return fetched;
}

/**
 * Start the prefetch worker for a restored data directory, detached, as the directory's owner:
 * `pgbak wal-fetch --prefetch-worker` with the settings file restore_command uses (no secret on
 * its command line). A worker that cannot start only costs speed: restore_command fetches itself.
 */
export function startPrefetchWorker(o: {
  pgbakCommand: readonly string[];
  pgdata: string;
  envFile: string;
  from: string;
  until?: Date | undefined;
  owner?: { uid: number; gid: number } | undefined;
  logger: Logger;
}): ChildProcess | undefined {
  const [command, ...pre] = o.pgbakCommand;
  const args = [
    ...pre,
    'wal-fetch',
    '--prefetch-worker',
    ...(o.until ? ['--until', o.until.toISOString()] : []),
    '--restore-pid',
    String(process.pid),
    '--pgdata',
    o.pgdata,
    '--env-file',
    o.envFile,
    o.from,
    '-',
  ];
  const asOwner = o.owner && process.getuid?.() === 0 && o.owner.uid !== 0 ? { uid: o.owner.uid, gid: o.owner.gid } : {};
  try {
    const child = spawn(command!, args, {
      detached: true,
      stdio: 'ignore',
      cwd: o.pgdata,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...(process.env.HOME ? { HOME: process.env.HOME } : {}) },
      ...asOwner,
    });
    child.on('error', (err) => o.logger.warn('could not start the WAL prefetch worker', { error: err.message }));
    child.unref();
    o.logger.debug('started the WAL prefetch worker', { pid: child.pid ?? 0, from: o.from });
    return child;
  } catch (err) {
    o.logger.warn('could not start the WAL prefetch worker', { error: (err as Error).message });
    return undefined;
  }
}
