import { randomBytes } from 'node:crypto';
import fs, { createWriteStream, type Dirent } from 'node:fs';
import { link, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError, ConflictError, diskFullError, errnoCode, fsError, isDiskFull, NotFoundError } from '../errors/index.js';
import { removeStaleTemps, type StaleTemp, type StaleTempOptions } from './stale-temps.js';
import type { PutOptions, PutResult, StorageBackend, StoredObject } from './storage-backend.js';
import { checkWritableDir } from './writable-dir.js';

/** Mode of every file pgbak creates: dumps hold the whole database. */
const FILE_MODE = 0o600;
/** Mode of every directory pgbak creates. */
const DIR_MODE = 0o700;

/** Bytes written between two background flushes of a file being stored (see {@link fileWrites}). */
export const FLUSH_EVERY = 32 * 1024 * 1024;

/**
 * The write stream's file-system calls. Each completed write is reported (PutOptions.onWritten:
 * an upload reads its parts from this file as they land). Every {@link FLUSH_EVERY} bytes an
 * fdatasync starts in the background (one at a time; the writes go on), so the disk writes the file
 * while the dump runs: the fsync before the rename then has only the last bytes to flush, not the
 * whole file (160 MB: 0.12-0.24 s here, the kernel starting no writeback of its own on a machine
 * with 24 GiB). A failed background flush fails the next write or the final fsync: its error is
 * reported once by the kernel, so it must not be lost.
 */
function fileWrites(path: string, onWritten: ((path: string, written: number) => void) | undefined) {
  let written = 0;
  let flushedAt = 0;
  let flushing: Promise<void> | undefined;
  let flushError: NodeJS.ErrnoException | undefined;
  const afterWrite = (fd: number, bytes: number) => {
    written += bytes;
    onWritten?.(path, written);
    if (flushing || flushError || written - flushedAt < FLUSH_EVERY) return;
    flushedAt = written;
    flushing = new Promise((resolve) =>
      fs.fdatasync(fd, (err) => {
        if (err) flushError ??= err;
        flushing = undefined;
        resolve();
      }),
    );
  };
  type Done<B> = (err: NodeJS.ErrnoException | null, bytes: number, buffers: B) => void;
  const counted =
    <B>(fd: number, cb: Done<B>): Done<B> =>
    (err, bytes, buffers) => {
      if (!err) afterWrite(fd, bytes);
      cb(err ?? flushError ?? null, bytes, buffers);
    };
  return {
    fs: {
      open: fs.open,
      // Not under a flush still running (after a failure): the descriptor could be reused.
      close: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) =>
        void (flushing ?? Promise.resolve()).then(() => fs.close(fd, cb)),
      write: (fd: number, buffer: Buffer, offset: number, length: number, position: number | null, cb: Done<Buffer>) =>
        fs.write(fd, buffer, offset, length, position, counted<Buffer>(fd, cb)),
      writev: (fd: number, buffers: Buffer[], position: number | null, cb: Done<Buffer[]>) =>
        fs.writev(fd, buffers, position, counted<Buffer[]>(fd, cb)),
      // `flush: true`: the fsync before close waits for the background flush and reports its error.
      fsync: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) =>
        void (flushing ?? Promise.resolve()).then(() => fs.fsync(fd, (err) => cb(err ?? flushError ?? null))),
    },
  };
}

/** True for the temporary files `put` writes (`.<name>.tmp-<pid>-<random>`); `list` never shows them. */
function isTempName(name: string): boolean {
  return name.startsWith('.') && name.includes('.tmp-');
}

/**
 * Stores objects as files under a root directory (BACKUP_DIR); a key is a relative path with
 * "/" separators. `put` writes a hidden temp file in the target directory, fsyncs it, renames it
 * over the final name and fsyncs the directory, so a reader sees either the old file or the
 * complete new one, and a crash or failure leaves no partial file under the final name.
 * Files are created 0600 and directories 0700.
 */
export class LocalBackend implements StorageBackend {
  readonly kind = 'local' as const;
  /** The absolute root directory. */
  readonly location: string;

  constructor(rootDir: string) {
    this.location = resolve(rootDir);
  }

  /** The absolute path of `key`. */
  urlOf(key: string): string {
    return this.pathOf(key);
  }

  /** The absolute path of `key` (files are on this host). */
  localPath(key: string): string {
    return this.pathOf(key);
  }

  /** The root, or its nearest existing ancestor (it is created on the first put), must be a writable directory. */
  async checkAccess(): Promise<void> {
    checkWritableDir(this.location, 'backup directory', 'BACKUP_DIR');
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<PutResult> {
    const target = this.pathOf(key);
    if (isTempName(basename(target))) {
      throw new AppError('invalid-key', `invalid storage key "${key}": names like ".x.tmp-…" are reserved for temporary files`);
    }
    const dir = dirname(target);
    let bodyError: unknown;
    // Which side failed first: pipeline() destroys the other side with the same error.
    let firstFailure: 'body' | 'file' | undefined;
    const onBodyError = (err: unknown) => {
      bodyError ??= err;
      firstFailure ??= 'body';
    };
    body.once('error', onBodyError);

    try {
      await mkdir(dir, { recursive: true, mode: DIR_MODE });
    } catch (err) {
      body.off('error', onBodyError);
      body.destroy();
      throw fsError(err, 'create directory', dir);
    }

    const temp = join(dir, `.${basename(target)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    let action = 'write';
    try {
      // `flush: true` fsyncs the file before the stream closes it.
      const out = createWriteStream(temp, { flags: 'wx', mode: FILE_MODE, flush: true, ...fileWrites(temp, options.onWritten) });
      out.once('error', () => (firstFailure ??= 'file'));
      await pipeline(body, out, options.signal ? { signal: options.signal } : {});
      const { size } = await stat(temp);
      action = 'rename';
      if (options.ifNoneMatch) {
        // link(2) fails with EEXIST instead of replacing: create-only, and still atomic.
        try {
          await link(temp, target);
        } catch (err) {
          if (errnoCode(err) === 'EEXIST') throw new ConflictError(`${target} already exists`, { cause: err });
          throw err;
        }
        await unlink(temp);
      } else {
        await rename(temp, target);
      }
      action = 'sync directory';
      await syncDirectory(dir);
      return { key, size };
    } catch (err) {
      // A full disk (in a write, the fsync at close or the rename) names the file being stored
      // and the free space it met, so it is measured before the temp file goes.
      const full = isDiskFull(err)
        ? diskFullError(err, target, {
            written: await stat(temp).then(
              (s) => s.size,
              () => undefined,
            ),
          })
        : undefined;
      if (action !== 'sync directory') await unlink(temp).catch(() => undefined);
      if (err instanceof ConflictError) throw err;
      if (options.signal?.aborted) throw options.signal.reason instanceof Error ? options.signal.reason : err;
      if (full) throw full;
      // The body's own failure (pg_dump died …) is reported as it is; the file's is a file-system error.
      if (bodyError !== undefined && firstFailure === 'body' && (err === bodyError || !errnoCode(err))) throw bodyError;
      throw fsError(err, action, action === 'write' ? temp : action === 'rename' ? target : dir);
    } finally {
      body.off('error', onBodyError);
    }
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const path = this.pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') throw notFound(key, path, err);
      throw fsError(err, 'read', path);
    }
    const info = await handle.stat().catch((err: unknown) => {
      void handle.close();
      throw fsError(err, 'read', path);
    });
    if (!info.isFile()) {
      await handle.close();
      throw notFound(key, path);
    }
    return handle.createReadStream(options.signal ? { signal: options.signal } : {});
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    const path = this.pathOf(key);
    try {
      const info = await stat(path);
      return info.isFile() ? { key, size: info.size, modified: info.mtime } : undefined;
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fsError(err, 'read', path);
    }
  }

  /** Every file whose key starts with `prefix`, depth first in name order; temp files are skipped. */
  async *list(prefix = ''): AsyncIterable<StoredObject> {
    // Walk only the directory the prefix names (its part up to the last "/").
    const start = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const parts = start.split('/').slice(0, -1);
    if (parts.some((s) => s === '' || s === '.' || s === '..')) return;
    yield* this.walk(start, prefix);
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fsError(err, 'delete', path);
    }
  }

  /**
   * Remove the temp files of puts whose process died (SIGKILL, OOM, power loss): `list` never
   * shows them, so nothing else would, and each holds up to a whole dump. Only files whose pid
   * (in the name) is not alive on this host and that were not modified for a minute
   * (STALE_TEMP_MIN_AGE_MS, see stale-temps.ts); returns what was removed (or, dry, would be).
   */
  removeStaleTemps(options: StaleTempOptions = {}): Promise<StaleTemp[]> {
    return removeStaleTemps(this.location, options);
  }

  private async *walk(relDir: string, prefix: string): AsyncIterable<StoredObject> {
    const dir = relDir ? join(this.location, ...relDir.split('/').filter(Boolean)) : this.location;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fsError(err, 'list', dir);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const key = relDir + entry.name;
      if (entry.isDirectory()) {
        const sub = key + '/';
        // Descend only into directories that can hold keys with the prefix.
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) yield* this.walk(sub, prefix);
      } else if (entry.isFile() && !isTempName(entry.name) && key.startsWith(prefix)) {
        const path = join(dir, entry.name);
        try {
          const info = await stat(path);
          yield { key, size: info.size, modified: info.mtime };
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw fsError(err, 'read', path); // deleted meanwhile: skip
        }
      }
    }
  }

  /** The absolute path of a key, refusing keys that would leave the root. */
  private pathOf(key: string): string {
    const segments = key.split('/');
    if (!key || key.includes('\\') || key.includes('\0') || segments.some((s) => s === '' || s === '.' || s === '..')) {
      throw new AppError('invalid-key', `invalid storage key "${key}": use relative "/"-separated names without "." or ".." segments`);
    }
    const path = join(this.location, ...segments);
    if (!path.startsWith(this.location + sep)) throw new AppError('invalid-key', `invalid storage key "${key}"`);
    return path;
  }
}

function notFound(key: string, path: string, cause?: unknown): NotFoundError {
  return new NotFoundError(`not found: ${key} (no file ${path})`, { cause });
}

/** fsync a directory so a rename in it survives a crash. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
