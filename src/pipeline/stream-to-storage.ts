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
 * ONE streaming pass: source → stages → sha256 → tee into the local file and every upload at the
 * same time. Consecutive child processes (pg_dump, zstd, gpg) are joined by kernel pipes, so node
 * handles only the final bytes; the source and stages must be created in the same tick as this
 * call. An upload reads each part back from the local file once it is written (FileSpool), with
 * the part's checksum from this pass (CRC32 or MD5: s3-upload.ts); nothing holds the whole dump.
 * Every put is atomic (temp file + rename; multipart completed only at end of stream), and the
 * stream ends only after every child exited 0, so a failure leaves nothing under the final key.
 * If only an upload fails or stalls (`remoteTimeoutMs`), the local copy and the other uploads go
 * on and its error is returned; if the local copy fails after an upload completed, the uploaded
 * object is deleted again.
 */
export async function streamToStorage(options: StreamToStorageOptions): Promise<StreamToStorageResult> {
  const { key, local, remote, logger } = options;
  // pg_dump → zstd → gpg talk through kernel pipes: node only reads the last child's output.
  ChildStage.connect([options.source, ...options.stages]);
  // Every bucket (the job's, then the further targets) is an optional branch of the tee, with its own upload.
  const more = options.more ?? [];
  const buckets = [
    ...(remote ? [{ name: 'remote', backend: remote, failed: 'upload failed; the local backup goes on' }] : []),
    ...more.map((backend, i) => ({ name: `more${i}`, backend, failed: 'upload to a further target failed; the others go on' })),
  ];
  const ms = options.remoteTimeoutMs;
  const tee = new Tee([
    { name: 'local', required: true },
    ...buckets.map((b) => ({
      name: b.name,
      required: false,
      stall: ms !== undefined ? uploadStall(b.backend, key, ms, logger) : undefined,
    })),
  ]);
  const hash = new HashStage(options.onBytes);

  // The uploads read their parts from the local file as it is written, instead of buffering them
  // (a local copy on this host only: a backend without files has no path to report).
  const spool = buckets.length > 0 && local.localPath(key) !== undefined ? new FileSpool() : undefined;
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
  // While an upload waits for the answers to its parts in flight, those requests' own timeouts
  // guard it, not the tee's stall limit: a part that takes longer than that on a slow link is work.
  // Each bucket locks with its own mode; one without Object Lock ignores the date.
  const put = { signal: options.signal, partSize: options.remotePartSize, retainUntil: options.remoteRetainUntil, spool };
  const uploads = buckets.map((b) =>
    b.backend.put(key, tee.branch(b.name), { ...put, onAwaitingServer: (w) => tee.awaitingServer(b.name, w) }).catch((err: unknown) => {
      const e = toAppError(err);
      if (!tee.destroyed) logger.warn(b.failed, { key, location: b.backend.location, error: e.message });
      tee.fail(b.name, e);
      throw e;
    }),
  );
  // Rejections are collected below; never leave them unhandled.
  localPut.catch(() => undefined);
  for (const u of uploads) u.catch(() => undefined);
  // The file is read until the last upload settled (on failure, that may be after this returns).
  if (spool) void Promise.allSettled([localPut, ...uploads]).then(() => spool.close());

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
    const cleanups = Promise.all(
      uploads.map((u, i) =>
        u.then(
          async (uploaded) => {
            if (uploaded)
              await buckets[i]!.backend.delete(key).catch((e: unknown) =>
                logger.warn('could not delete the uploaded object of a failed backup', { key, error: String(e) }),
              );
          },
          () => undefined,
        ),
      ),
    ).then(() => undefined);
    if (options.deferRemoteCleanup) options.deferRemoteCleanup(cleanups);
    else await cleanups;
    const localError: unknown = localResult.status === 'rejected' ? localResult.reason : undefined;
    // Prefer a classified root cause (pg_dump died, disk full) over the generic abort it caused elsewhere.
    const candidates = [pipelineError, localError].filter((e) => e !== undefined).map(toAppError);
    throw candidates.find((e) => e.code !== 'internal' && e.code !== 'interrupted') ?? candidates[0]!;
  }
  const outcomes = (await Promise.allSettled(uploads)).map((r) =>
    r.status === 'fulfilled' ? { remote: r.value, remoteError: undefined } : { remote: undefined, remoteError: toAppError(r.reason) },
  );
  const bucket = remote ? outcomes[0] : undefined;
  return {
    more: remote ? outcomes.slice(1) : outcomes,
    size: hash.bytes,
    sha256: hash.sha256,
    local: localResult.value,
    remote: bucket?.remote,
    remoteError: bucket?.remoteError,
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
