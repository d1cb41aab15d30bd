import type { Readable } from 'node:stream';
import type { StaleTemp, StaleTempOptions } from './stale-temps.js';

/** One stored object. Keys are relative to the backend's root (BACKUP_DIR, or bucket + prefix). */
export interface StoredObject {
  readonly key: string;
  readonly size: number;
  /** Storage modification time; informational only: retention ages come from manifests. */
  readonly modified: Date;
}

export interface PutOptions {
  readonly signal?: AbortSignal;
  /** Known length, when the caller has it (small objects); streams of unknown length omit it. */
  readonly contentLength?: number;
  readonly contentType?: string;
  /**
   * Create only: when an object already exists under `key`, reject with ConflictError and leave
   * it untouched (a local link(2), an S3 `If-None-Match: *`). Used for the run record that
   * claims a backup name, so two writers can never share keys.
   */
  readonly ifNoneMatch?: boolean;
  /**
   * Multipart part size in bytes for this put (S3: raised to 5 MiB when smaller; the backend's
   * own part size when absent). Backends without parts ignore it.
   */
  readonly partSize?: number | undefined;
  /**
   * S3 Object Lock: store the object locked until this date, in the mode of STORAGE_OBJECT_LOCK
   * (S3 with Object Lock configured only; other backends and STORAGE_OBJECT_LOCK=off ignore it).
   */
  readonly retainUntil?: Date | undefined;
  /**
   * The same bytes as `body`, being written to a file on this host by another put at the same
   * time (the local copy). S3 then uploads each part from that file once it is written, instead
   * of buffering the part in memory; `body` is still read (for backpressure, and to checksum each
   * part on the stream pass). Backends that do not buffer ignore it.
   */
  readonly spool?: SpoolFile | undefined;
  /**
   * Called after each write to the file `put` stores into (local backend only): its path (a temp
   * name, open for reading until the put ends) and the bytes written so far. Feeds a SpoolFile.
   */
  readonly onWritten?: ((path: string, written: number) => void) | undefined;
  /**
   * Called with true when the put stops reading `body` to wait for the server's answers to the
   * parts it has in flight (each request bound by its own timeout: S3's STORAGE_TIMEOUT), and with
   * false when it reads again. A caller's stall watch on `body` then holds its limit meanwhile: a
   * slow link is at work, and a frozen server fails the requests themselves.
   */
  readonly onAwaitingServer?: ((waiting: boolean) => void) | undefined;
}

/** A file that another put is writing, readable by range as its bytes land (src/storage/file-spool.ts). */
export interface SpoolFile {
  /** Resolves once bytes [0, end) are written; rejects when the file's put failed or `signal` aborts. */
  whenWritten(end: number, signal?: AbortSignal): Promise<void>;
  /** A stream of bytes [start, end) of the file (written already: call after whenWritten). */
  read(start: number, end: number): Readable;
}

/** A multipart upload that was started and never completed nor aborted (its run was killed). */
export interface StaleUpload {
  /** The key, relative to the backend's prefix. */
  readonly key: string;
  readonly uploadId: string;
  readonly initiated: Date;
}

export interface PutResult {
  readonly key: string;
  readonly size: number;
}

/**
 * The storage contract every backend keeps (test/contract/storage-contract.ts checks it):
 * - put streams `body` to `key` and is atomic: until it resolves nothing is visible under
 *   `key` (an earlier object there stays intact), and if `body` errors, the signal aborts or the
 *   backend fails, the promise rejects and nothing is left under `key` or in temporary space;
 *   with `ifNoneMatch` it rejects with ConflictError when `key` exists, which stays intact;
 * - get streams an object; a missing key rejects with NotFoundError;
 * - stat returns undefined for a missing key;
 * - list yields every object whose key starts with `prefix` (any number, pagination hidden);
 * - delete is idempotent: deleting a missing key succeeds.
 * Keys may contain spaces and non-ASCII characters and use "/" as separator.
 * Backend failures are thrown as AppErrors (StorageError, PermissionError, NotFoundError).
 */
export interface StorageBackend {
  /** "local", "s3", or "memory" (tests, dry runs). */
  readonly kind: 'local' | 's3' | 'memory';
  /** Where this backend stores, for people: "/var/backups/db" or "s3://bucket/backups/". */
  readonly location: string;
  /** How long a request may go unanswered (STORAGE_TIMEOUT) in ms; undefined when nothing times out (local). */
  readonly timeoutMs?: number | undefined;
  /** The full location of one key, for people and for the seed's recipes. */
  urlOf(key: string): string;
  put(key: string, body: Readable, options?: PutOptions): Promise<PutResult>;
  get(key: string, options?: { signal?: AbortSignal }): Promise<Readable>;
  stat(key: string): Promise<StoredObject | undefined>;
  list(prefix?: string): AsyncIterable<StoredObject>;
  delete(key: string): Promise<void>;
  /** The file path of `key` when the backend stores files on this host (local); else undefined. */
  localPath(key: string): string | undefined;
  /**
   * Rejects (AppError) unless the backend can be used: local, the root is (or can be made) a
   * writable directory; S3, the endpoint answers, the credentials are accepted, the bucket exists.
   */
  checkAccess(): Promise<void>;
  /** Remove (or, dry, find) the temp files of killed writers; only backends that have such files. */
  removeStaleTemps?(options?: StaleTempOptions): Promise<StaleTemp[]>;
  /** Abort (or, dry, find) selected multipart uploads left open; only backends that have them. */
  abortStaleUploads?(o: {
    select: (upload: StaleUpload) => boolean;
    dryRun?: boolean;
  }): Promise<{ aborted: StaleUpload[]; errors: string[] }>;
}
