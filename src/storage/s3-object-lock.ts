import type { S3Request, S3Response } from './s3-client.js';
import { md5Base64, xmlBlocks, xmlText } from './s3-client.js';
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

/**
 * Sends one request of the backend's bucket, bounded by its timeout (S3Backend's `call`); a
 * `cleanup` request is not aborted by the command's stop signal.
 */
export type Call = (r: Omit<S3Request, 'bucket' | 'signal'>, options?: { cleanup?: boolean }) => Promise<S3Response>;

const S3_NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';

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
export async function objectLockEnabled(call: Call, s: S3Settings): Promise<boolean> {
  try {
    const out = await call({ method: 'GET', query: { 'object-lock': '' } });
    return xmlText(out.body, 'ObjectLockEnabled') === 'Enabled';
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
export async function enableObjectLock(call: Call, s: S3Settings): Promise<void> {
  const doc = `<ObjectLockConfiguration ${S3_NS}><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>`;
  const lock = () => call({ method: 'PUT', query: { 'object-lock': '' }, headers: { 'content-md5': md5Base64(doc) }, body: doc });
  try {
    try {
      await lock();
    } catch (err) {
      if (!/versioning/i.test(err instanceof Error ? err.message : '')) throw err;
      const versioning = `<VersioningConfiguration ${S3_NS}><Status>Enabled</Status></VersioningConfiguration>`;
      await call({ method: 'PUT', query: { versioning: '' }, headers: { 'content-md5': md5Base64(versioning) }, body: versioning });
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
export async function deleteAllVersions(call: Call, s: S3Settings, fullKey: string, url: string): Promise<void> {
  const versions: { id: string; marker: boolean }[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  do {
    let page: string;
    try {
      const query = { versions: '', prefix: fullKey, 'key-marker': keyMarker, 'version-id-marker': versionIdMarker };
      page = (await call({ method: 'GET', query })).body;
    } catch (err) {
      throw mapS3Error(err, s, `listing of the versions of ${url}`);
    }
    for (const [tag, marker] of [
      ['Version', false],
      ['DeleteMarker', true],
    ] as const) {
      for (const v of xmlBlocks(page, tag)) {
        const id = xmlText(v, 'VersionId');
        if (xmlText(v, 'Key') === fullKey && id) versions.push({ id, marker });
      }
    }
    const nextKey = xmlText(page, 'NextKeyMarker') || undefined;
    const nextId = xmlText(page, 'NextVersionIdMarker') || undefined;
    const more = xmlText(page, 'IsTruncated') === 'true' && (nextKey !== keyMarker || nextId !== versionIdMarker);
    keyMarker = more ? nextKey : undefined;
    versionIdMarker = more ? nextId : undefined;
  } while (keyMarker !== undefined);
  // Data first: while a locked version stays, its delete markers may stay too (they hide nothing more).
  versions.sort((a, b) => Number(a.marker) - Number(b.marker));
  for (const v of versions) {
    try {
      await call({ method: 'DELETE', key: fullKey, query: { versionId: v.id } }, { cleanup: true });
    } catch (err) {
      if (s3ErrorName(err) === 'NoSuchKey' || s3ErrorName(err) === 'NoSuchVersion') continue;
      // AWS and versitygw refuse a locked version with AccessDenied, MinIO with InvalidRequest
      // ("Object is WORM protected"): the version's own retention tells which it is.
      const status = httpStatusOf(err);
      const lock = v.marker || status === undefined || status >= 500 ? undefined : await retentionOf(call, fullKey, v.id);
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
  call: Call,
  fullKey: string,
  versionId: string,
): Promise<{ locked: boolean; until: Date | undefined } | undefined> {
  const ahead = (d: Date | undefined) => d !== undefined && d.getTime() > Date.now();
  const dateOf = (text: string | undefined) => (text ? new Date(text) : undefined);
  try {
    const r = await call({ method: 'GET', key: fullKey, query: { retention: '', versionId } });
    const until = dateOf(xmlText(r.body, 'RetainUntilDate'));
    if (ahead(until)) return { locked: true, until };
  } catch {
    /* no retention, or not allowed to read it: HeadObject below */
  }
  try {
    const head = await call({ method: 'HEAD', key: fullKey, query: { versionId } });
    const header = head.headers['x-amz-object-lock-retain-until-date'];
    const until = dateOf(typeof header === 'string' ? header : undefined);
    const held = head.headers['x-amz-object-lock-legal-hold'] === 'ON';
    return { locked: held || ahead(until), until };
  } catch {
    return undefined;
  }
}
