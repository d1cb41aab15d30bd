import {
  DeleteObjectCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { S3Settings } from '../config/job.js';
import { StorageError } from '../errors/index.js';
import { mapS3Error, s3ErrorName, httpStatusOf } from './s3-errors.js';

/**
 * S3 Object Lock (STORAGE_OBJECT_LOCK): the bucket's lock status, enabling it, and deleting the
 * versions of a key on a versioned bucket, where a locked version refuses to go.
 */

/**
 * Days added to RETENTION_DAYS for an object's retain-until date: a backup becomes prunable after
 * RETENTION_DAYS (counted from its start); its objects stay locked one day longer, so clock skew
 * and a run that ends late never leave an object that prune wants gone but cannot remove sooner
 * than a day after, and a compromised host can never shorten a backup's life below its retention.
 */
export const OBJECT_LOCK_MARGIN_DAYS = 1;

/**
 * The retain-until date of a backup that started at `started`: + RETENTION_DAYS + the margin,
 * rounded up to a whole second (versitygw stores seconds; the manifest then says what the server holds).
 */
export function retainUntilOf(started: Date, retentionDays: number): Date {
  return new Date(Math.ceil((started.getTime() + (retentionDays + OBJECT_LOCK_MARGIN_DAYS) * 86_400_000) / 1000) * 1000);
}

/** Sends one request bounded by the backend's timeout (S3Backend's `request`). */
export type Send = <T>(send: (abortSignal: AbortSignal) => Promise<T>) => Promise<T>;

/** A delete that the server refused because the version is under Object Lock until `retainUntil`. */
export class ObjectLockedError extends StorageError {
  constructor(
    readonly url: string,
    readonly retainUntil: Date | undefined,
    options: { cause?: unknown } = {},
  ) {
    super(
      'storage-object-locked',
      `${url} is under S3 Object Lock${retainUntil ? ` until ${retainUntil.toISOString()}` : ' (legal hold)'}: the server refuses to delete it`,
      { hint: 'it can be removed after that date; prune keeps it until then', cause: options.cause },
    );
  }
}

/** A delete refused for want of a permission (a least-privilege backup key: docs/storage.md). */
export function deletePermissionError(s: S3Settings, url: string, permission: string, cause: unknown): StorageError {
  return new StorageError(
    'storage-permission',
    `S3 delete of ${url} refused: access key "${s.accessKeyId}" lacks the ${permission} permission on bucket "${s.bucket}"`,
    {
      hint: `a least-privilege backup key cannot prune (docs/storage.md): run prune with a key that has ${permission}, or set BACKUP_PRUNE=false on this host`,
      cause,
    },
  );
}

/** Whether the bucket has Object Lock enabled (GetObjectLockConfiguration). */
export async function objectLockEnabled(client: S3Client, s: S3Settings, send: Send): Promise<boolean> {
  try {
    const out = await send((abortSignal) => client.send(new GetObjectLockConfigurationCommand({ Bucket: s.bucket }), { abortSignal }));
    return out.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
  } catch (err) {
    const name = s3ErrorName(err) ?? '';
    if (
      /ObjectLockConfigurationNotFound|NoSuchObjectLockConfiguration/i.test(name) ||
      (httpStatusOf(err) === 404 && name !== 'NoSuchBucket')
    ) {
      return false;
    }
    throw mapS3Error(err, s, 'Object Lock check');
  }
}

/**
 * Enable Object Lock on a bucket that exists without it: versitygw and AWS allow it (AWS once
 * versioning is on: then versioning is enabled and the lock tried again); MinIO only at creation,
 * and the bucket is left as it was, with a StorageError that says to create a new bucket.
 */
export async function enableObjectLock(client: S3Client, s: S3Settings, send: Send): Promise<void> {
  const lock = () =>
    send((abortSignal) =>
      client.send(new PutObjectLockConfigurationCommand({ Bucket: s.bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }), {
        abortSignal,
      }),
    );
  try {
    try {
      await lock();
    } catch (err) {
      if (!/versioning/i.test(err instanceof Error ? err.message : '')) throw err;
      await send((abortSignal) =>
        client.send(new PutBucketVersioningCommand({ Bucket: s.bucket, VersioningConfiguration: { Status: 'Enabled' } }), {
          abortSignal,
        }),
      );
      await lock();
    }
  } catch (err) {
    const e = mapS3Error(err, s, 'enabling Object Lock');
    throw new StorageError(
      'storage-object-lock',
      `bucket "${s.bucket}" exists without Object Lock, and it cannot be enabled: ${e.message}`,
      {
        hint: 'most S3 servers enable Object Lock only when a bucket is created: set STORAGE_BUCKET to a new bucket and run `pgbak init --object-lock`',
        cause: err,
      },
    );
  }
}

/** The preflight error when STORAGE_OBJECT_LOCK asks for a lock that the bucket does not have. */
export function objectLockMissing(s: S3Settings): StorageError {
  return new StorageError(
    'storage-object-lock',
    `STORAGE_OBJECT_LOCK=${s.objectLock} but bucket "${s.bucket}" has no Object Lock: its backups could be deleted by anyone holding the key`,
    {
      hint: 'create a bucket with `pgbak init --object-lock` (a new STORAGE_BUCKET: most servers enable it only at creation), or set STORAGE_OBJECT_LOCK=off',
    },
  );
}

/**
 * Delete every version (and delete marker) of `fullKey`: on a versioned bucket a plain DELETE only
 * adds a delete marker and the data stays. A version the server refuses to delete because it is
 * locked throws ObjectLockedError with its retain-until date; a refusal for a missing permission
 * throws a `storage-permission` StorageError naming s3:DeleteObjectVersion.
 */
export async function deleteAllVersions(client: S3Client, s: S3Settings, fullKey: string, url: string, send: Send): Promise<void> {
  const versions: { id: string; marker: boolean }[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  do {
    let page;
    try {
      page = await send((abortSignal) =>
        client.send(
          new ListObjectVersionsCommand({ Bucket: s.bucket, Prefix: fullKey, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }),
          { abortSignal },
        ),
      );
    } catch (err) {
      throw mapS3Error(err, s, `listing of the versions of ${url}`);
    }
    for (const v of page.Versions ?? []) if (v.Key === fullKey && v.VersionId) versions.push({ id: v.VersionId, marker: false });
    for (const m of page.DeleteMarkers ?? []) if (m.Key === fullKey && m.VersionId) versions.push({ id: m.VersionId, marker: true });
    const more = page.IsTruncated === true && (page.NextKeyMarker !== keyMarker || page.NextVersionIdMarker !== versionIdMarker);
    keyMarker = more ? page.NextKeyMarker : undefined;
    versionIdMarker = more ? page.NextVersionIdMarker : undefined;
  } while (keyMarker !== undefined);
  // Data first: while a locked version stays, its delete markers may stay too (they hide nothing more).
  versions.sort((a, b) => Number(a.marker) - Number(b.marker));
  for (const v of versions) {
    try {
      await send((abortSignal) =>
        client.send(new DeleteObjectCommand({ Bucket: s.bucket, Key: fullKey, VersionId: v.id }), { abortSignal }),
      );
    } catch (err) {
      if (s3ErrorName(err) === 'NoSuchKey' || s3ErrorName(err) === 'NoSuchVersion') continue;
      // AWS and versitygw refuse a locked version with AccessDenied, MinIO with InvalidRequest
      // ("Object is WORM protected"): the version's own retention tells which it is.
      const status = httpStatusOf(err);
      const lock = v.marker || status === undefined || status >= 500 ? undefined : await retentionOf(client, s, fullKey, v.id, send);
      if (lock?.locked) throw new ObjectLockedError(url, lock.until, { cause: err });
      if (s3ErrorName(err) === 'AccessDenied' || status === 403) throw deletePermissionError(s, url, 's3:DeleteObjectVersion', err);
      throw mapS3Error(err, s, `delete of ${url}`);
    }
  }
}

/**
 * The retention of one version: locked when its retain-until date is still ahead or a legal hold
 * is on. GetObjectRetention first (versitygw's HeadObject of a noncurrent version omits the lock
 * fields), then HeadObject (legal hold; servers without GetObjectRetention).
 */
async function retentionOf(
  client: S3Client,
  s: S3Settings,
  fullKey: string,
  versionId: string,
  send: Send,
): Promise<{ locked: boolean; until: Date | undefined } | undefined> {
  const ahead = (d: Date | undefined) => d !== undefined && d.getTime() > Date.now();
  try {
    const r = await send((abortSignal) =>
      client.send(new GetObjectRetentionCommand({ Bucket: s.bucket, Key: fullKey, VersionId: versionId }), { abortSignal }),
    );
    if (ahead(r.Retention?.RetainUntilDate)) return { locked: true, until: r.Retention!.RetainUntilDate };
  } catch {
    /* no retention, or not allowed to read it: HeadObject below */
  }
  try {
    const head = await send((abortSignal) =>
      client.send(new HeadObjectCommand({ Bucket: s.bucket, Key: fullKey, VersionId: versionId }), { abortSignal }),
    );
    const until = head.ObjectLockRetainUntilDate;
    const held = head.ObjectLockLegalHoldStatus === 'ON';
    return { locked: held || ahead(until), until };
  } catch {
    return undefined;
  }
}
