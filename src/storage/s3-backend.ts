import type { Readable } from 'node:stream';
import type { S3Settings } from '../config/job.js';
import { ConflictError, NotFoundError } from '../errors/index.js';
import { md5Base64, S3Client, type S3Response, xmlBlocks, xmlEscape, xmlText } from './s3-client.js';
import {
  anySignal,
  bucketMissing,
  CleanupFailure,
  DeadlineExceeded,
  DEFAULT_TIMEOUT_MS,
  httpStatusOf,
  isNotFound,
  mapS3Error,
  s3ErrorName,
} from './s3-errors.js';
import {
  deleteAllVersions,
  deletePermissionError,
  enableObjectLock,
  objectLockEnabled,
  objectLockMissing,
  type Call,
} from './s3-object-lock.js';
import { uploadObject } from './s3-upload.js';
import type { PutOptions, PutResult, StaleUpload, StorageBackend, StoredObject } from './storage-backend.js';
import type { SilentEndpoints } from './silent-endpoints.js';

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
  /** The run's endpoints that did not answer in time (silent-endpoints.ts): not asked again. */
  readonly silence?: SilentEndpoints | undefined;
}

/**
 * Stores objects in an S3 bucket (MinIO, AWS, R2, Ceph, versitygw …) under `settings.prefix`, with
 * pgbak's own S3 client (s3-client.ts). A put larger than a part is a multipart upload, which stays
 * invisible until it completes; when the body errors, the signal aborts or a request fails, the
 * multipart upload is aborted before `put` rejects, so nothing is left behind.
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
      accessKeyId: settings.accessKeyId,
      secretAccessKey: settings.secretAccessKey,
      // The idle timeout is what notices a frozen or black-holed server (see above); a total
      // request timeout would also cut a slow but moving part upload.
      connectTimeoutMs: Math.min(10_000, this.timeoutMs),
      socketTimeoutMs: this.timeoutMs,
      silence: options.silence,
    });
  }

  /**
   * Send one request of this bucket (with the client's retries) that must be answered within the
   * timeout, and is aborted by `signal` and the backend's stop signal unless it is `cleanup`. The
   * deadline ends when the answer starts: a download's body is then bounded by the socket idle
   * timeout only.
   */
  private async request<T>(
    send: (signal: AbortSignal) => Promise<T>,
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

  /** One request of this bucket within the timeout (also for the helpers of s3-object-lock.ts). */
  private readonly call: Call = (r, options = {}) =>
    this.request((signal) => this.client.send({ ...r, bucket: this.bucket, signal }), options);

  urlOf(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  /** Objects in a bucket have no path on this host. */
  localPath(_key: string): undefined {
    return undefined;
  }

  /**
   * Streams `body` to `key` (s3-upload.ts): one PutObject below a part, else a multipart upload of
   * `partSize` parts (`queueSize` at a time), read back from `options.spool` when there is one.
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
    const onAbort = () => {
      doom();
      // Also wakes a part loop that waits for data from a stalled source.
      body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('upload aborted'));
    };
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });

    const headers = {
      'content-type': options.contentType,
      // STORAGE_OBJECT_LOCK: the object is stored locked (a multipart upload carries it from its start).
      ...(this.settings.objectLock && options.retainUntil
        ? {
            'x-amz-object-lock-mode': this.settings.objectLock === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE',
            'x-amz-object-lock-retain-until-date': options.retainUntil.toISOString(),
          }
        : {}),
    };
    let size = 0;
    try {
      size = await uploadObject(
        { client: this.client, bucket: this.bucket, key: this.prefix + key, headers, ifNoneMatch: options.ifNoneMatch },
        {
          body,
          spool: options.spool,
          partSize,
          queueSize: this.settings.queueSize,
          signal: requests.signal,
          timeoutMs: this.timeoutMs,
          onProgress: (n) => (size = n),
          onAwaitingServer: options.onAwaitingServer,
          doom,
        },
      );
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
      const { stream } = await this.request(
        (signal) => this.client.open({ method: 'GET', bucket: this.bucket, key: this.prefix + key, signal }),
        { signal: options.signal },
      );
      return stream;
    } catch (err) {
      if (s3ErrorName(err) === 'NoSuchKey') {
        throw new NotFoundError(`not found: ${key} (no object ${this.urlOf(key)})`, { cause: err });
      }
      throw mapS3Error(err, this.settings, `download of ${key}`);
    }
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const out = await this.call({ method: 'HEAD', key: this.prefix + key });
      const modified = out.headers['last-modified'];
      return { key, size: Number(out.headers['content-length'] ?? 0), modified: modified ? new Date(modified) : new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapS3Error(err, this.settings, `stat of ${key}`);
    }
  }

  /** Every object under `prefix` (relative to the backend's prefix), following continuation tokens. */
  async *list(prefix = ''): AsyncIterable<StoredObject> {
    let token: string | undefined;
    do {
      let page: S3Response;
      try {
        page = await this.call({ method: 'GET', query: { 'list-type': '2', prefix: this.prefix + prefix, 'continuation-token': token } });
      } catch (err) {
        throw mapS3Error(err, this.settings, 'list');
      }
      for (const object of xmlBlocks(page.body, 'Contents')) {
        const key = xmlText(object, 'Key');
        if (key === undefined || !key.startsWith(this.prefix)) continue;
        const modified = xmlText(object, 'LastModified');
        yield {
          key: key.slice(this.prefix.length),
          size: Number(xmlText(object, 'Size') ?? 0),
          modified: modified ? new Date(modified) : new Date(0),
        };
      }
      token = xmlText(page.body, 'IsTruncated') === 'true' ? xmlText(page.body, 'NextContinuationToken') : undefined;
    } while (token);
  }

  /**
   * Deletes `key`; deleting a missing key succeeds (S3 answers 204 either way). Deleting is
   * cleanup, so a stop signal does not abort it (the timeout bounds it).
   */
  async delete(key: string): Promise<void> {
    // With Object Lock the bucket is versioned: a plain DELETE would only hide the data behind a marker.
    if (this.settings.objectLock) return deleteAllVersions(this.call, this.settings, this.prefix + key, this.urlOf(key));
    try {
      await this.call({ method: 'DELETE', key: this.prefix + key }, { cleanup: true });
    } catch (err) {
      if (s3ErrorName(err) === 'NoSuchKey') return;
      if (s3ErrorName(err) === 'AccessDenied') throw deletePermissionError(this.settings, this.urlOf(key), 's3:DeleteObject', err);
      throw mapS3Error(err, this.settings, `delete of ${key}`);
    }
  }

  /**
   * Checks that the endpoint answers, the credentials are accepted and the bucket exists; with
   * STORAGE_OBJECT_LOCK, that the bucket has Object Lock (else a `storage-object-lock` error).
   */
  async checkAccess(): Promise<void> {
    try {
      await this.call({ method: 'HEAD' });
    } catch (err) {
      // HeadBucket has no response body: a missing bucket is a bare 404.
      throw isNotFound(err) ? bucketMissing(this.settings, err) : mapS3Error(err, this.settings, 'access check');
    }
    if (this.settings.objectLock && !(await this.objectLockEnabled())) throw objectLockMissing(this.settings);
  }

  /** Whether the bucket has Object Lock enabled. */
  objectLockEnabled(): Promise<boolean> {
    return objectLockEnabled(this.call, this.settings);
  }

  /**
   * Creates the bucket unless it exists; idempotent. With `objectLock`, a new bucket is created
   * with Object Lock (and so versioning), and an existing one without it gets it enabled or a
   * `storage-object-lock` error.
   */
  async ensureBucket(options: { objectLock?: boolean } = {}): Promise<'created' | 'exists'> {
    let exists = false;
    try {
      await this.call({ method: 'HEAD' });
      exists = true;
    } catch (err) {
      if (!isNotFound(err)) throw mapS3Error(err, this.settings, 'bucket check');
    }
    if (!exists) {
      try {
        const { region } = this.settings;
        // Outside us-east-1, S3 wants the region named (as the AWS SDKs add it).
        const body =
          region && region !== 'us-east-1'
            ? `<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>${region}</LocationConstraint></CreateBucketConfiguration>`
            : undefined;
        const headers = options.objectLock ? { 'x-amz-bucket-object-lock-enabled': 'true' } : {};
        await this.call({ method: 'PUT', headers, body });
      } catch (err) {
        const name = s3ErrorName(err);
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw mapS3Error(err, this.settings, 'bucket creation');
        exists = true;
      }
    }
    if (options.objectLock && !(await this.objectLockEnabled())) await enableObjectLock(this.call, this.settings);
    return exists ? 'exists' : 'created';
  }

  /**
   * Replaces the bucket's lifecycle configuration with one rule: objects under the prefix expire
   * after `days` days, and incomplete multipart uploads are aborted after one day.
   */
  async setLifecycle(days: number): Promise<void> {
    if (!Number.isInteger(days) || days < 1) throw new RangeError(`lifecycle days must be a whole number ≥ 1, got ${days}`);
    const doc =
      '<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ID>pgbak-expire-backups</ID>' +
      `<Filter><Prefix>${xmlEscape(this.prefix)}</Prefix></Filter><Status>Enabled</Status><Expiration><Days>${days}</Days></Expiration>` +
      '<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>';
    try {
      // The request needs an integrity header: Content-MD5 (AWS, MinIO, Ceph accept it).
      await this.call({ method: 'PUT', query: { lifecycle: '' }, headers: { 'content-md5': md5Base64(doc) }, body: doc });
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
      let page: S3Response;
      try {
        page = await this.call({ method: 'GET', query: { uploads: '', 'key-marker': keyMarker, 'upload-id-marker': uploadIdMarker } });
      } catch (err) {
        throw mapS3Error(err, this.settings, 'listing of multipart uploads');
      }
      for (const u of xmlBlocks(page.body, 'Upload')) {
        const fullKey = xmlText(u, 'Key');
        const uploadId = xmlText(u, 'UploadId');
        const initiated = xmlText(u, 'Initiated');
        if (!fullKey?.startsWith(this.prefix) || !uploadId || !initiated) continue;
        const upload = { key: fullKey.slice(this.prefix.length), uploadId, initiated: new Date(initiated) };
        if (o.select(upload)) stale.push(upload);
      }
      const nextKey = xmlText(page.body, 'NextKeyMarker') || undefined;
      const nextId = xmlText(page.body, 'NextUploadIdMarker') || undefined;
      const more = xmlText(page.body, 'IsTruncated') === 'true' && (nextKey !== keyMarker || nextId !== uploadIdMarker);
      keyMarker = more ? nextKey : undefined;
      uploadIdMarker = more ? nextId : undefined;
    } while (keyMarker !== undefined);
    if (o.dryRun) return { aborted: stale, errors: [] };
    const aborted: StaleUpload[] = [];
    const errors: string[] = [];
    for (const u of stale) {
      try {
        await this.call({ method: 'DELETE', key: this.prefix + u.key, query: { uploadId: u.uploadId } }, { cleanup: true });
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
