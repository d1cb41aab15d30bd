import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutBucketLifecycleConfigurationCommand,
  S3Client,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import type { S3Settings } from '../config/job.js';
import { ConflictError, NotFoundError } from '../errors/index.js';
import { bucketMissing, DeadlineExceeded, DEFAULT_TIMEOUT_MS, isNotFound, mapS3Error, s3ErrorName, httpStatusOf } from './s3-errors.js';
import {
  addContentMd5,
  anySignal,
  CleanupFailure,
  honourRequestScope,
  freshBodyPerAttempt,
  requestScope,
  trackMultipartCleanup,
} from './s3-middleware.js';
import { spooledUpload } from './s3-spooled-upload.js';
import {
  deleteAllVersions,
  deletePermissionError,
  enableObjectLock,
  objectLockEnabled,
  objectLockMissing,
  type Send,
} from './s3-object-lock.js';
import type { PutOptions, PutResult, StaleUpload, StorageBackend, StoredObject } from './storage-backend.js';

export { DEFAULT_TIMEOUT_MS, httpStatusOf, mapS3Error, s3ErrorName } from './s3-errors.js';

/** Smallest part S3 accepts (except for the last one). */
const MIN_PART_SIZE = 5 * 1024 * 1024;
/** Part size when neither the options nor the settings give one. */
const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

export type { StaleUpload } from './storage-backend.js';

export interface S3BackendOptions {
  /** Default multipart part size in bytes; overrides `settings.partSize`. Raised to 5 MiB when smaller. */
  readonly partSize?: number | undefined;
  /**
   * A command's stop signal (SIGTERM): every request that reads or writes is aborted when it
   * aborts. Cleanup (delete, aborting a multipart upload) still runs, bounded by the timeout.
   */
  readonly signal?: AbortSignal | undefined;
}

/**
 * Stores objects in an S3 bucket (MinIO, AWS, R2, Ceph …) under `settings.prefix`. Every put goes
 * through a multipart upload (lib-storage `Upload`), which stays invisible until it completes;
 * when the body errors, the signal aborts or a request fails, the multipart upload is aborted
 * before `put` rejects, so nothing is left behind. Checksums are only sent when an operation
 * requires them, which keeps the client compatible with MinIO, R2 and Ceph.
 *
 * Nothing waits on S3 forever (STORAGE_TIMEOUT, `settings.timeoutMs`): a stopped or black-holed
 * endpoint still completes the TCP handshake from the kernel backlog and then never answers, so
 * a connect timeout alone never fires. Every socket has an idle timeout; every request that is
 * not a streaming upload must be answered within the timeout, retries included; a doomed upload
 * gives its requests in flight one more timeout, and aborting it gets one too. A timeout is a
 * StorageError `storage-timeout`.
 */
export class S3Backend implements StorageBackend {
  readonly kind = 's3' as const;
  /** `s3://bucket/prefix`. */
  readonly location: string;
  /** The default multipart part size in bytes (a put's `partSize` overrides it). */
  readonly partSize: number;
  readonly bucket: string;
  readonly prefix: string;
  /** STORAGE_TIMEOUT in ms. */
  readonly timeoutMs: number;
  private readonly client: S3Client;
  private readonly stop: AbortSignal | undefined;

  constructor(
    private readonly settings: S3Settings,
    options: S3BackendOptions = {},
  ) {
    this.bucket = settings.bucket;
    this.prefix = settings.prefix;
    this.location = `s3://${settings.bucket}/${settings.prefix}`;
    this.partSize = Math.max(MIN_PART_SIZE, options.partSize ?? settings.partSize ?? DEFAULT_PART_SIZE);
    this.timeoutMs = settings.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.stop = options.signal;
    this.client = new S3Client({
      endpoint: settings.endpoint,
      region: settings.region,
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      forcePathStyle: true,
      // The 2025 SDK default (CRC32 on every request, aws-chunked bodies) breaks MinIO, R2 and Ceph.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // The idle timeout is what notices a frozen or black-holed server (see above); a total
      // request timeout would also cut a slow but moving part upload.
      requestHandler: { connectionTimeout: Math.min(10_000, this.timeoutMs), socketTimeout: this.timeoutMs },
    });
    honourRequestScope(this.client);
    trackMultipartCleanup(this.client, this.timeoutMs);
    addContentMd5(this.client);
    freshBodyPerAttempt(this.client);
  }

  /**
   * Send one request (with the SDK's retries) that must be answered within the timeout, and is
   * aborted by `signal` and the backend's stop signal unless it is `cleanup`. The deadline ends
   * when the answer starts: a download's body is then bounded by the socket idle timeout only.
   */
  private async request<T>(
    send: (abortSignal: AbortSignal) => Promise<T>,
    options: { signal?: AbortSignal | undefined; cleanup?: boolean } = {},
  ): Promise<T> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DeadlineExceeded(this.timeoutMs)), this.timeoutMs);
    timer.unref();
    const stops = options.cleanup ? [] : [options.signal, this.stop].filter((s) => s !== undefined);
    try {
      return await send(AbortSignal.any([deadline.signal, ...stops]));
    } finally {
      clearTimeout(timer);
    }
  }

  urlOf(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  /** Objects in a bucket have no path on this host. */
  localPath(_key: string): undefined {
    return undefined;
  }

  /**
   * Streams `body` to `key` with a multipart upload of `partSize` parts (`queueSize` at a time).
   * Rejects, after aborting the multipart upload, when the body errors (with the body's error),
   * when the signal aborts (with its reason) or when S3 fails (with a StorageError). If aborting
   * the multipart upload fails too, the original error is reported (the bucket's lifecycle rule
   * removes the parts after a day). On failure the body is destroyed, as `pipeline` would.
   */
  async put(key: string, body: Readable, options: PutOptions = {}): Promise<PutResult> {
    const signal = anySignal(options.signal, this.stop);
    // Cancels the requests of this upload still in flight, one timeout after it was doomed (its
    // body failed or it was stopped): a working server finishes a part in time (aborting the
    // multipart upload under a part still being stored could leave that part behind), a frozen
    // one never would. A small body (one PutObject) must be stored within the timeout.
    const requests = new AbortController();
    const partSize = options.partSize === undefined ? this.partSize : Math.max(MIN_PART_SIZE, options.partSize);
    const small = options.contentLength !== undefined && options.contentLength <= partSize;
    let cancelTimer: NodeJS.Timeout | undefined;
    const doom = () => {
      if (cancelTimer || requests.signal.aborted) return;
      cancelTimer = setTimeout(() => requests.abort(new DeadlineExceeded(this.timeoutMs)), small ? 0 : this.timeoutMs);
      cancelTimer.unref();
    };
    const deadline = small ? setTimeout(() => requests.abort(new DeadlineExceeded(this.timeoutMs)), this.timeoutMs) : undefined;
    deadline?.unref();
    let bodyError: unknown;
    const onBodyError = (err: unknown) => {
      bodyError ??= err;
      doom();
    };
    body.once('error', onBodyError);

    const params = {
      Bucket: this.bucket,
      Key: this.prefix + key,
      ContentType: options.contentType,
      // STORAGE_OBJECT_LOCK: the object is stored locked (a multipart upload carries it from its start).
      ...(this.settings.objectLock && options.retainUntil
        ? {
            ObjectLockMode: this.settings.objectLock === 'compliance' ? ('COMPLIANCE' as const) : ('GOVERNANCE' as const),
            ObjectLockRetainUntilDate: options.retainUntil,
          }
        : {}),
    };
    let size = 0;
    // With the local copy being written alongside, parts are read from it (s3-spooled-upload.ts);
    // else lib-storage buffers them. Upload.abort() makes done() reject at once, while the parts in
    // flight and the AbortMultipartUpload still run in the background. This gate's `onabort` is
    // never called: the part loop stops at the abort, but done() settles only after the cleanup ran.
    const spool = options.ifNoneMatch ? undefined : options.spool;
    const gate = { signal: { aborted: false, onabort: null }, abort: () => void (gate.signal.aborted = true) };
    const upload = spool
      ? undefined
      : new Upload({
          client: this.client,
          // Create only (a single PutObject: only small bodies such as run records use it).
          params: { ...params, Body: body, ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}) },
          partSize,
          queueSize: this.settings.queueSize,
          leavePartsOnError: false,
          abortController: gate,
        });
    upload?.on('httpUploadProgress', (p) => (size = Math.max(size, p.loaded ?? 0)));
    const onAbort = () => {
      void upload?.abort();
      doom();
      // Also wakes a part loop that waits for data from a stalled source.
      body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('upload aborted'));
    };
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const run = async () => {
      if (upload) await upload.done();
      else if (spool) {
        const { queueSize } = this.settings;
        size = await spooledUpload({ client: this.client, params, body, spool, partSize, queueSize, onProgress: (n) => (size = n), doom });
      }
    };

    try {
      await requestScope.run(requests.signal, run);
      return { key, size };
    } catch (err) {
      if (!body.destroyed) body.destroy();
      if (signal?.aborted && signal.reason instanceof Error) throw signal.reason;
      if (bodyError !== undefined) throw bodyError;
      const original = err instanceof CleanupFailure ? (err.original ?? err.cause) : err;
      if (options.ifNoneMatch && (httpStatusOf(original) === 412 || s3ErrorName(original) === 'PreconditionFailed')) {
        throw new ConflictError(`${this.urlOf(key)} already exists`, { cause: original });
      }
      throw mapS3Error(original, this.settings, `upload of ${key}`);
    } finally {
      clearTimeout(cancelTimer);
      clearTimeout(deadline);
      signal?.removeEventListener('abort', onAbort);
      body.off('error', onBodyError);
    }
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    try {
      const out = await this.request(
        (abortSignal) => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }), { abortSignal }),
        {
          signal: options.signal,
        },
      );
      if (!(out.Body instanceof Readable)) throw new Error('GetObject returned no Node stream');
      return out.Body;
    } catch (err) {
      if (s3ErrorName(err) === 'NoSuchKey') {
        throw new NotFoundError(`not found: ${key} (no object ${this.urlOf(key)})`, { cause: err });
      }
      throw mapS3Error(err, this.settings, `download of ${key}`);
    }
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const out = await this.request((abortSignal) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }), { abortSignal }),
      );
      return { key, size: out.ContentLength ?? 0, modified: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapS3Error(err, this.settings, `stat of ${key}`);
    }
  }

  /** Every object under `prefix` (relative to the backend's prefix), following continuation tokens. */
  async *list(prefix = ''): AsyncIterable<StoredObject> {
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        const input = { Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token };
        page = await this.request((abortSignal) => this.client.send(new ListObjectsV2Command(input), { abortSignal }));
      } catch (err) {
        throw mapS3Error(err, this.settings, 'list');
      }
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.prefix)) continue;
        yield { key: object.Key.slice(this.prefix.length), size: object.Size ?? 0, modified: object.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Deletes `key`; deleting a missing key succeeds (S3 answers 204 either way). Deleting is
   * cleanup, so a stop signal does not abort it (the timeout bounds it).
   */
  async delete(key: string): Promise<void> {
    // With Object Lock the bucket is versioned: a plain DELETE would only hide the data behind a marker.
    if (this.settings.objectLock) return deleteAllVersions(this.client, this.settings, this.prefix + key, this.urlOf(key), this.send);
    try {
      await this.request(
        (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }), { abortSignal }),
        {
          cleanup: true,
        },
      );
    } catch (err) {
      if (s3ErrorName(err) === 'NoSuchKey') return;
      if (s3ErrorName(err) === 'AccessDenied') throw deletePermissionError(this.settings, this.urlOf(key), 's3:DeleteObject', err);
      throw mapS3Error(err, this.settings, `delete of ${key}`);
    }
  }

  /** One request within the timeout (for the helpers of s3-object-lock.ts). */
  private readonly send: Send = (fn) => this.request(fn);

  /**
   * Checks that the endpoint answers, the credentials are accepted and the bucket exists; with
   * STORAGE_OBJECT_LOCK, that the bucket has Object Lock (else a `storage-object-lock` error).
   */
  async checkAccess(): Promise<void> {
    try {
      await this.request((abortSignal) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }));
    } catch (err) {
      // HeadBucket has no response body: a missing bucket is a bare 404.
      throw isNotFound(err) ? bucketMissing(this.settings, err) : mapS3Error(err, this.settings, 'access check');
    }
    if (this.settings.objectLock && !(await this.objectLockEnabled())) throw objectLockMissing(this.settings);
  }

  /** Whether the bucket has Object Lock enabled. */
  objectLockEnabled(): Promise<boolean> {
    return objectLockEnabled(this.client, this.settings, this.send);
  }

  /**
   * Creates the bucket unless it exists; idempotent. With `objectLock`, a new bucket is created
   * with Object Lock (and so versioning), and an existing one without it gets it enabled or a
   * `storage-object-lock` error.
   */
  async ensureBucket(options: { objectLock?: boolean } = {}): Promise<'created' | 'exists'> {
    let exists = false;
    try {
      await this.request((abortSignal) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }));
      exists = true;
    } catch (err) {
      if (!isNotFound(err)) throw mapS3Error(err, this.settings, 'bucket check');
    }
    if (!exists) {
      try {
        const input = { Bucket: this.bucket, ...(options.objectLock ? { ObjectLockEnabledForBucket: true } : {}) };
        await this.request((abortSignal) => this.client.send(new CreateBucketCommand(input), { abortSignal }));
      } catch (err) {
        const name = s3ErrorName(err);
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw mapS3Error(err, this.settings, 'bucket creation');
        exists = true;
      }
    }
    if (options.objectLock && !(await this.objectLockEnabled())) await enableObjectLock(this.client, this.settings, this.send);
    return exists ? 'exists' : 'created';
  }

  /**
   * Replaces the bucket's lifecycle configuration with one rule: objects under the prefix expire
   * after `days` days, and incomplete multipart uploads are aborted after one day.
   */
  async setLifecycle(days: number): Promise<void> {
    if (!Number.isInteger(days) || days < 1) throw new RangeError(`lifecycle days must be a whole number ≥ 1, got ${days}`);
    try {
      await this.request((abortSignal) =>
        this.client.send(
          new PutBucketLifecycleConfigurationCommand({
            Bucket: this.bucket,
            LifecycleConfiguration: {
              Rules: [
                {
                  ID: 'pgbak-expire-backups',
                  Status: 'Enabled',
                  Filter: { Prefix: this.prefix },
                  Expiration: { Days: days },
                  AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
                },
              ],
            },
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      throw mapS3Error(err, this.settings, 'lifecycle configuration');
    }
  }

  /**
   * Abort the multipart uploads under this prefix that `select` picks (by key relative to the
   * prefix and start time): a run killed mid-upload (SIGKILL, OOM, power
   * loss) never aborts its upload, and its parts are stored, and billed, until someone does.
   * Returns the uploads aborted (or, dry, that would be) and one line per abort that failed; a
   * failed listing throws. MinIO lists uploads by a `Prefix` only when it is a whole key, so the
   * bucket's uploads are listed without one and filtered here.
   */
  async abortStaleUploads(o: {
    select: (upload: StaleUpload) => boolean;
    dryRun?: boolean;
  }): Promise<{ aborted: StaleUpload[]; errors: string[] }> {
    const stale: StaleUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (err) {
        throw mapS3Error(err, this.settings, 'listing of multipart uploads');
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key?.startsWith(this.prefix) || !u.UploadId || !u.Initiated) continue;
        const key = u.Key.slice(this.prefix.length);
        const upload = { key, uploadId: u.UploadId, initiated: u.Initiated };
        if (o.select(upload)) stale.push(upload);
      }
      const more = page.IsTruncated === true && (page.NextKeyMarker !== keyMarker || page.NextUploadIdMarker !== uploadIdMarker);
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
    if (o.dryRun) return { aborted: stale, errors: [] };
    const aborted: StaleUpload[] = [];
    const errors: string[] = [];
    for (const u of stale) {
      try {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.prefix + u.key, UploadId: u.uploadId }));
        aborted.push(u);
      } catch (err) {
        // Completed or aborted meanwhile: nothing is left to abort.
        if (s3ErrorName(err) === 'NoSuchUpload') continue;
        errors.push(
          `cannot abort the multipart upload of ${this.urlOf(u.key)}: ${mapS3Error(err, this.settings, 'abort of a multipart upload').message}`,
        );
      }
    }
    return { aborted, errors };
  }

  /** Closes the client's sockets. */
  destroy(): void {
    this.client.destroy();
  }
}
