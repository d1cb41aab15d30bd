import { closeSync, createReadStream, openSync, read } from 'node:fs';
import { Readable } from 'node:stream';
import type { SpoolFile } from './storage-backend.js';

/** The file system of a read of the shared descriptor: reads as usual, never closes it (FileSpool.close does). */
const KEEP_FD_OPEN = { read, close: (_fd: number, done: (err: NodeJS.ErrnoException | null) => void) => done(null) };

/**
 * The local copy of a backup as an upload's source: the local put reports each completed write
 * (`PutOptions.onWritten`), and an S3 put reads a part from the file once its bytes are written
 * (`PutOptions.spool`) instead of holding it in memory. The file is opened for reading at its
 * first write and read through that descriptor, so the local put's rename (or, on failure, its
 * unlink) does not disturb a part being read. `close()` once every reader has settled.
 */
export class FileSpool implements SpoolFile {
  private written = 0;
  private fd: number | undefined;
  private failure: Error | undefined;
  private closed = false;
  private ended = false;
  private readonly waiters = new Set<{ end: number; resolve: () => void; reject: (err: Error) => void }>();

  /** For the writer (PutOptions.onWritten): `written` bytes of the file at `path` are on disk (in the page cache). */
  readonly onWritten = (path: string, written: number): void => {
    if (this.closed || this.failure) return;
    if (this.fd === undefined) {
      try {
        // Synchronously, before the writer can go on to rename or unlink the temp file.
        this.fd = openSync(path, 'r');
      } catch (err) {
        this.fail(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
    this.written = written;
    for (const w of this.waiters) {
      if (w.end <= written) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  };

  /** The writer finished: waits past its end reject (they would never resolve). */
  end(): void {
    this.ended = true;
    for (const w of this.waiters) w.reject(new Error(`the local copy ended at ${this.written} bytes, before byte ${w.end}`));
    this.waiters.clear();
  }

  /** The writer failed: every wait rejects with `err` (the readers' puts then fail and clean up). */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
  }

  whenWritten(end: number, signal?: AbortSignal): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (end <= this.written && (this.fd !== undefined || end === 0)) return Promise.resolve();
    if (this.ended) return Promise.reject(new Error(`the local copy ended at ${this.written} bytes, before byte ${end}`));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.waiters.delete(waiter);
        reject(abortReason(signal));
      };
      const waiter = {
        end,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  read(start: number, end: number): Readable {
    // An empty range (an empty object, whose file may never have been written to).
    if (end <= start) return Readable.from([]);
    if (this.fd === undefined || this.closed) throw new Error('FileSpool: the file is not open');
    if (end > this.written) throw new Error(`FileSpool: bytes up to ${end} are not written yet (${this.written})`);
    // The descriptor is shared by every read: destroying one read (a part whose request failed)
    // must not close it, and a ReadStream's destroy closes its fd whatever autoClose says.
    return createReadStream('', { fd: this.fd, start, end: end - 1, autoClose: false, highWaterMark: 256 * 1024, fs: KEEP_FD_OPEN });
  }

  /** Closes the read descriptor; later waits and reads fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fail(new Error('FileSpool closed'));
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function abortReason(signal: AbortSignal | undefined): Error {
  return signal?.reason instanceof Error ? signal.reason : new Error('aborted');
}
