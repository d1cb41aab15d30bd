import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AppError, ExitCode, fsError, IntegrityError, NotFoundError, UsageError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { ChildStage } from '../pipeline/child-stage.js';
import { HashStage } from '../pipeline/hash-stage.js';
import { openStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { identityOfDataDirectory } from '../wal/cluster-identity.js';
import { archiveLocation, findArchived, listArchived, readMarker, wrongClusterError, type ArchivedWal } from '../wal/wal-archive.js';
import { decodeStages } from '../wal/wal-encoding.js';
import { parseWalFileName, segmentName, segmentNumber, type WalFileName } from '../wal/wal-names.js';
import { dropPrefetchedBefore, prefetchDir, prefetchWorkerRunning } from '../wal/wal-prefetch.js';
import { forEachLimit } from '../model/for-each-limit.js';
import { walBackend, type WalJob } from './wal-job.js';

export interface WalFetchOptions {
  readonly job: WalJob;
  /** restore_command's %f: the file PostgreSQL wants. */
  readonly name: string;
  /** restore_command's %p: where to put it, relative to the data directory. */
  readonly path: string;
  readonly cwd?: string | undefined;
  /** The data directory being recovered (its pg_control names the cluster); default: the working directory. */
  readonly pgdata?: string | undefined;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
  /**
   * After a segment, fetch up to `count` following segments of its timeline into the prefetch
   * directory of `pgdata` and these settings flags (wal-prefetch.ts), `parallel` at a time, for
   * PostgreSQL's next calls.
   */
  readonly prefetch?: { readonly signature: string; readonly count: number; readonly parallel: number } | undefined;
}

/** How far a wal-fetch fetches ahead of PostgreSQL's recovery, and how many at once. */
export const WAL_PREFETCH = { count: 8, parallel: 4 } as const;

export interface WalFetchResult {
  readonly name: string;
  readonly key: string;
  readonly bytes: number;
  readonly durationMs: number;
}

/**
 * The end of the archive: the file is not there, and nothing says it should be. The one failure
 * that restore_command may report with exit code 1 (PostgreSQL then ends recovery); every other
 * failure must stop recovery instead.
 */
export class WalNotArchivedError extends NotFoundError {
  constructor(name: string, where: string) {
    super(`${name} is not in the WAL archive at ${where}`);
  }
}

/**
 * `pgbak wal-fetch %f %p`: fetch one archived file for restore_command, decode it, check its
 * sha256 and only then rename it to %p. A missing file is {@link WalNotArchivedError}, unless a
 * later segment of the same timeline is archived: then it is a gap, and recovery must not end
 * there and promote at an earlier point than the archive holds.
 */
export async function walFetch(options: WalFetchOptions): Promise<WalFetchResult> {
  const started = Date.now();
  const { job, logger } = options;
  const cwd = options.cwd ?? process.cwd();
  const file = parseWalFileName(options.name);
  if (!file)
    throw new UsageError(`${options.name} is not a file name PostgreSQL archives`, {
      hint: "use restore_command = 'pgbak wal-fetch %f %p'",
    });
  const dest = resolve(cwd, options.path);

  await using storage = openStorage(job, { signal: options.signal });
  const backend = walBackend(storage);
  const marker = await readMarker(backend);
  if (!marker) {
    throw new AppError('wal-archive-missing', `there is no WAL archive at ${archiveLocation(backend)}`, {
      exitCode: ExitCode.notFound,
      hint: 'check STORAGE_BUCKET and STORAGE_PREFIX: they must be the ones archive_command pushed to',
    });
  }
  const ours = await identityOfDataDirectory(options.pgdata ?? cwd).catch(() => undefined);
  if (ours && ours.systemIdentifier !== marker.systemIdentifier)
    throw wrongClusterError(backend, marker.systemIdentifier, ours.systemIdentifier);

  const copies = await findArchived(backend, marker.systemIdentifier, file.name);
  if (copies.length === 0) {
    await refuseGap(backend, marker.systemIdentifier, file);
    throw new WalNotArchivedError(file.name, archiveLocation(backend));
  }
  if (new Set(copies.map((c) => c.sha256)).size > 1) {
    throw new IntegrityError(`${file.name} is archived twice with different content: ${copies.map((c) => c.key).join(', ')}`, {
      hint: 'two servers archived into one prefix; find out which copy belongs to the history you recover, remove the other, then start again',
    });
  }
  const copy = copies[0]!;
  const pre = options.prefetch && {
    ...options.prefetch,
    dir: prefetchDir(resolve(cwd, options.pgdata ?? '.'), options.prefetch.signature),
  };
  // The prefetch worker (started by restore) fetches ahead already: no second copy of its work.
  const ahead =
    pre && file.kind === 'segment' && !(await prefetchWorkerRunning(pre.dir))
      ? prefetchAfter(backend, marker.systemIdentifier, file.name, marker.segmentSize, pre, logger)
      : Promise.resolve();
  const bytes = await fetchInto(backend, copy, dest, options.signal);
  logger.info('restored from the WAL archive', { file: file.name, key: copy.key, bytes });
  await ahead;
  return { name: file.name, key: copy.key, bytes, durationMs: Date.now() - started };
}

/**
 * Fetch the segments after `name` on its timeline into `dir` (decoded, sha256 checked, renamed
 * into place), stopping at the first one not archived (the end of the archive, or a gap that
 * PostgreSQL's own call will report). Failures here are only logged: that call fetches again.
 */
async function prefetchAfter(
  backend: StorageBackend,
  systemIdentifier: string,
  name: string,
  segmentSize: number,
  pre: { dir: string; count: number; parallel: number },
  logger: Logger,
): Promise<void> {
  try {
    await mkdir(pre.dir, { recursive: true, mode: 0o700 });
    await dropPrefetchedBefore(pre.dir, name);
    const timeline = Number.parseInt(name.slice(0, 8), 16);
    const first = segmentNumber(name, segmentSize);
    const names = Array.from({ length: pre.count }, (_, i) => segmentName(timeline, first + BigInt(i + 1), segmentSize));
    const present = new Set(await readdir(pre.dir));
    let end = false;
    await forEachLimit(names, pre.parallel, async (next) => {
      if (end || present.has(next)) return;
      const copies = await findArchived(backend, systemIdentifier, next);
      if (copies.length !== 1) {
        end = true;
        return;
      }
      await fetchInto(backend, copies[0]!, join(pre.dir, next), undefined);
    });
  } catch (err) {
    logger.debug('prefetch stopped; PostgreSQL fetches the next segments itself', { error: (err as Error).message });
  }
}

/** A segment missing while a later one of its timeline is archived is a gap: recovery must stop, not end. */
async function refuseGap(backend: StorageBackend, systemIdentifier: string, file: WalFileName): Promise<void> {
  if (file.kind !== 'segment') return;
  const later = (await listArchived(backend, systemIdentifier)).find(
    (a) => a.file.kind === 'segment' && a.file.timeline === file.timeline && a.file.name > file.name,
  );
  if (!later) return;
  throw new AppError(
    'wal-gap',
    `${file.name} is missing from the WAL archive at ${archiveLocation(backend)}, but the later ${later.file.name} is there: the archive has a gap`,
    {
      exitCode: ExitCode.integrity,
      hint: "recovery stops here rather than end early; copy the segment from the old server's pg_wal if it still exists (pgbak wal-push), or recover to a time before the gap",
    },
  );
}

/** Decode one archived file into `dest` through a temporary name (default: beside it); the sha256 must match its key. */
export async function fetchInto(
  backend: StorageBackend,
  copy: ArchivedWal,
  dest: string,
  signal: AbortSignal | undefined,
  tmp = `${dest}.pgbak-${process.pid}.tmp`,
): Promise<number> {
  const hash = new HashStage();
  try {
    const body = await backend.get(copy.key, signal ? { signal } : {});
    const stages = decodeStages(copy.encoding);
    ChildStage.connect(stages);
    await pipeline([body, ...stages, hash, createWriteStream(tmp, { mode: 0o600 })], ...(signal ? [{ signal }] : []));
    if (hash.sha256 !== copy.sha256) {
      throw new IntegrityError(
        `${copy.file.name} from ${backend.urlOf(copy.key)} is corrupt: its sha256 is ${hash.sha256}, the archive recorded ${copy.sha256}`,
        {
          hint: 'recovery stops here; restore the segment from another copy, or recover to a time before it',
        },
      );
    }
    await rename(tmp, dest);
    return hash.bytes;
  } catch (err) {
    await rm(tmp, { force: true });
    throw fsError(
      err,
      'write',
      tmp,
      'restore_command writes %p into the data directory: run it as the server user, from the data directory',
    );
  }
}
