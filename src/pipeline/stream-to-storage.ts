import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StorageError, toAppError, type AppError } from '../errors/index.js';
import { formatDuration } from '../model/human-units.js';
import type { Logger } from '../logging/logger.js';
import { FileSpool } from '../storage/file-spool.js';
import type { PutResult, StorageBackend } from '../storage/storage-backend.js';
import { ChildStage } from './child-stage.js';
import { HashStage } from './hash-stage.js';
import { Tee } from './tee.js';

export interface StreamToStorageOptions {
  /** The producer (pg_dump). */
  readonly source: Readable;
  /** Transform stages in order (compressor, gpg). */
  readonly stages: readonly Duplex[];
  readonly key: string;
  readonly local: StorageBackend;
  readonly remote?: StorageBackend | undefined;
  /** Further bucket targets (an off-site copy): each an optional branch of the same tee, with its own upload. */
  readonly more?: readonly StorageBackend[] | undefined;
  /**
   * STORAGE_TIMEOUT: an upload that takes no data for this long (a frozen server) is dropped with
   * a `storage-timeout` error, and the local copy goes on without waiting for it.
   */
  readonly remoteTimeoutMs?: number | undefined;
  /** The upload's multipart part size (the backend's own when absent). */
  readonly remotePartSize?: number | undefined;
  /** STORAGE_OBJECT_LOCK: the uploaded object is locked until this date. */
  readonly remoteRetainUntil?: Date | undefined;
  /**
   * When the run fails, the upload's own cleanup (aborting its multipart upload) can take a few
   * STORAGE_TIMEOUTs on a server that stopped answering. Given this, the failure is thrown at once
   * and the cleanup handed over, so the caller removes its local files first and waits for it
   * after; else it is awaited here.
   */
  readonly deferRemoteCleanup?: ((cleanup: Promise<void>) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onBytes?: (total: number) => void;
  readonly logger: Logger;
}

export interface StreamToStorageResult {
  readonly size: number;
  readonly sha256: string;
  readonly local: PutResult;
  readonly remote: PutResult | undefined;
  /** The upload failed while the local copy succeeded. */
  readonly remoteError: AppError | undefined;
  /** The outcome of each of `more`, in its order. */
  readonly more: readonly { readonly remote: PutResult | undefined; readonly remoteError: AppError | undefined }[];
}

/**
 * ONE streaming pass: source → stages → sha256 → tee into the local file and the upload at the
 * same time. Consecutive child processes (pg_dump, zstd, gpg) are joined by kernel pipes, so node
 * handles only the final bytes; the source and stages must be created in the same tick as this call. An upload reads each part back from the local file once it is written (FileSpool), with the part's MD5 from this pass; nothing holds the whole dump. Both puts are atomic
 * (temp file + rename; multipart completed only at end of stream), and the stream ends only
 * after every child exited 0, so a failure leaves nothing under the final key. If only the
 * upload fails or stalls (`remoteTimeoutMs`), the local copy is kept and the upload error is
 * returned; if the local copy fails after the upload completed, the uploaded object is deleted again.
 */
export async function streamToStorage(options: StreamToStorageOptions): Promise<StreamToStorageResult> {
  const { key, local, remote, logger } = options;
  // pg_dump → zstd → gpg talk through kernel pipes: node only reads the last child's output.
  ChildStage.connect([options.source, ...options.stages]);
  const stall = remote && options.remoteTimeoutMs !== undefined ? uploadStall(remote, key, options.remoteTimeoutMs, logger) : undefined;
  const more = options.more ?? [];
  const moreStall = (b: StorageBackend) =>
    options.remoteTimeoutMs !== undefined ? uploadStall(b, key, options.remoteTimeoutMs, logger) : undefined;
  const tee = new Tee([
    { name: 'local', required: true },
    ...(remote ? [{ name: 'remote', required: false, stall }] : []),
    ...more.map((b, i) => ({ name: `more${i}`, required: false, stall: moreStall(b) })),
  ]);
  const hash = new HashStage(options.onBytes);

  // The uploads read their parts from the local file as it is written, instead of buffering them
  // (a local copy on this host only: a backend without files has no path to report).
  const spool = (remote || more.length > 0) && local.localPath(key) !== undefined ? new FileSpool() : undefined;
  const localPut = local.put(key, tee.branch('local'), { signal: options.signal, onWritten: spool?.onWritten }).then(
    (stored) => {
      spool?.end();
      return stored;
    },
    (err: unknown) => {
      spool?.fail(toAppError(err));
      tee.fail('local', toAppError(err));
      throw err;
    },
  );
  const put = { signal: options.signal, partSize: options.remotePartSize, retainUntil: options.remoteRetainUntil, spool };
  // While an upload waits for the answers to its parts in flight, those requests' own timeouts
  // guard it, not the tee's stall limit: a part that takes longer than that on a slow link is work.
  const remotePut = remote
    ? remote.put(key, tee.branch('remote'), { ...put, onAwaitingServer: (w) => tee.awaitingServer('remote', w) }).catch((err: unknown) => {
        const e = toAppError(err);
        if (!tee.destroyed) logger.warn('upload failed; the local backup goes on', { key, error: e.message });
        tee.fail('remote', e);
        throw e;
      })
    : undefined;
  const morePuts = more.map((b, i) =>
    // Each bucket locks with its own mode; one without Object Lock ignores the date.
    b.put(key, tee.branch(`more${i}`), { ...put, onAwaitingServer: (w) => tee.awaitingServer(`more${i}`, w) }).catch((err: unknown) => {
      const e = toAppError(err);
      if (!tee.destroyed)
        logger.warn('upload to a further target failed; the others go on', { key, location: b.location, error: e.message });
      tee.fail(`more${i}`, e);
      throw e;
    }),
  );
  // Rejections are collected below; never leave them unhandled.
  localPut.catch(() => undefined);
  remotePut?.catch(() => undefined);
  for (const p of morePuts) p.catch(() => undefined);
  // The file is read until the last upload settled (on failure, that may be after this returns).
  if (spool) void Promise.allSettled([localPut, remotePut, ...morePuts]).then(() => spool.close());

  let pipelineError: unknown;
  try {
    await pipeline([options.source, ...options.stages, hash, tee], { signal: options.signal });
  } catch (err) {
    pipelineError = err;
  }
  const [localResult] = await Promise.allSettled([localPut]);

  if (pipelineError !== undefined || localResult.status === 'rejected') {
    // Nothing may remain under the final name. The puts clean up after themselves; this is the
    // belt-and-braces for a put that completed before another part failed.
    if (localResult.status === 'fulfilled') {
      await local
        .delete(key)
        .catch((e: unknown) => logger.warn('could not delete the local file of a failed backup', { key, error: String(e) }));
    }
    const remoteCleanup = (remotePut ?? Promise.resolve(undefined)).then(
      async (uploaded) => {
        if (remote && uploaded) {
          await remote
            .delete(key)
            .catch((e: unknown) => logger.warn('could not delete the uploaded object of a failed backup', { key, error: String(e) }));
        }
      },
      () => undefined,
    );
    const moreCleanups = morePuts.map((p, i) =>
      p.then(
        async (uploaded) => {
          if (uploaded)
            await more[i]!.delete(key).catch((e: unknown) =>
              logger.warn('could not delete the uploaded object of a failed backup', { key, error: String(e) }),
            );
        },
        () => undefined,
      ),
    );
    const cleanups = Promise.all([remoteCleanup, ...moreCleanups]).then(() => undefined);
    if (options.deferRemoteCleanup) options.deferRemoteCleanup(cleanups);
    else await cleanups;
    const localError: unknown = localResult.status === 'rejected' ? localResult.reason : undefined;
    // Prefer a classified root cause (pg_dump died, disk full) over the generic abort it caused elsewhere.
    const candidates = [pipelineError, localError].filter((e) => e !== undefined).map(toAppError);
    throw candidates.find((e) => e.code !== 'internal' && e.code !== 'interrupted') ?? candidates[0]!;
  }
  const [remoteResult] = await Promise.allSettled([remotePut ?? Promise.resolve(undefined)]);
  const moreResults = await Promise.allSettled(morePuts);
  return {
    more: moreResults.map((r) =>
      r.status === 'fulfilled' ? { remote: r.value, remoteError: undefined } : { remote: undefined, remoteError: toAppError(r.reason) },
    ),
    size: hash.bytes,
    sha256: hash.sha256,
    local: localResult.value,
    remote: remoteResult.status === 'fulfilled' ? remoteResult.value : undefined,
    remoteError: remoteResult.status === 'rejected' ? toAppError(remoteResult.reason) : undefined,
  };
}

/** The Tee's stall limit of an upload: the error it is dropped with, logged when it happens. */
function uploadStall(remote: StorageBackend, key: string, timeoutMs: number, logger: Logger) {
  return {
    afterMs: timeoutMs,
    error: () => {
      const limit = formatDuration(timeoutMs);
      logger.warn(`upload stalled for ${limit}: going on with the local backup only`, { key, location: remote.location });
      return new StorageError(
        'storage-timeout',
        `upload to ${remote.urlOf(key)} stalled: the S3 server took no data for ${limit} (STORAGE_TIMEOUT)`,
        {
          hint: `check that the S3 server is running and reachable (STORAGE_TIMEOUT is ${limit})`,
        },
      );
    },
  };
}
