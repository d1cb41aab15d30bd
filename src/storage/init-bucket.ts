import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { isAppError, messageOf, UsageError } from '../errors/index.js';
import type { JobStorage } from './job-storage.js';
import { S3Backend } from './s3-backend.js';
import type { StorageBackend } from './storage-backend.js';

/** What bucket setup needs of a backend (an `S3Backend` has all of it). */
type BucketBackend = StorageBackend & Pick<S3Backend, 'ensureBucket' | 'setLifecycle' | 'bucket' | 'prefix' | 'objectLockEnabled'>;

export type AccessCheckName = 'write' | 'read' | 'list' | 'delete';

export interface AccessCheck {
  readonly name: AccessCheckName;
  readonly ok: boolean;
  /** Why it failed, or that it was skipped. */
  readonly detail?: string | undefined;
}

export interface InitBucketReport {
  /** `s3://bucket/prefix` */
  readonly location: string;
  readonly bucket: 'created' | 'exists';
  /** write, read, list, delete: in that order, always all four. */
  readonly checks: readonly AccessCheck[];
  /** True when every check passed. */
  readonly ok: boolean;
  /** The probe object's key (relative to the prefix). */
  readonly probeKey: string;
  /** With `lifecycleDays`: installed, or `unsupported` when the server does not implement lifecycle rules (a warning says so). */
  readonly lifecycle?: 'installed' | 'unsupported' | undefined;
  /** With `objectLock`: the bucket has Object Lock (and versioning) enabled. */
  readonly objectLock?: 'enabled' | undefined;
  readonly warnings: readonly string[];
}

export interface InitBucketOptions {
  /** Install the bucket lifecycle rule: expire the prefix after this many days, abort multipart uploads after 1. */
  readonly lifecycleDays?: number | undefined;
  /** Create the bucket with S3 Object Lock (and versioning), or enable it on the existing one. */
  readonly objectLock?: boolean | undefined;
}

/** Prefix of the probe object; not a pgbak backup name, so no listing or prune ever sees it. */
export const PROBE_PREFIX = '.pgbak-probe-';

/** The warning when the S3 server answers NotImplemented to a lifecycle rule (versitygw does). */
export const lifecycleUnsupportedWarning = (endpointMessage: string): string =>
  `no lifecycle rule installed: ${endpointMessage}. pgbak prune (RETENTION_DAYS with BACKUP_KEEP_MIN) still removes old backups and stale multipart uploads`;

export const LIFECYCLE_WARNING =
  'a bucket lifecycle rule deletes by age alone: if backups stop, it removes the last good backup too. ' +
  "pgbak's own retention (pgbak prune: RETENTION_DAYS with BACKUP_KEEP_MIN) is the recommended way";

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

/**
 * Prepare a bucket for pgbak (`pgbak init`): create it when missing, then prove with a probe
 * object under the prefix that pgbak can write, read back (same bytes), list and delete there.
 * Idempotent: a second run finds the bucket ("exists") and leaves nothing behind. With
 * `lifecycleDays`, installs the seed's lifecycle rule and warns that it deletes by age alone; a
 * server that does not implement lifecycle rules (NotImplemented) gets a warning instead.
 * Invalid `lifecycleDays` (< 1) throws a UsageError before anything is done; bucket creation and
 * lifecycle failures throw (StorageError); the four checks are reported, never thrown.
 */
export async function initBucket(storage: JobStorage | BucketBackend, options: InitBucketOptions = {}): Promise<InitBucketReport> {
  const remote = bucketOf(storage);
  const days = options.lifecycleDays;
  if (days !== undefined && (!Number.isSafeInteger(days) || days < 1)) {
    throw new UsageError(`a bucket lifecycle rule needs a whole number of days ≥ 1, got ${days} (RETENTION_DAYS)`, {
      hint: 'set RETENTION_DAYS ≥ 1 for --lifecycle, or rely on pgbak prune',
    });
  }
  const bucket = await remote.ensureBucket({ objectLock: options.objectLock === true });
  const probeKey = `${PROBE_PREFIX}${randomBytes(8).toString('hex')}`;
  const body = Buffer.from(`pgbak access probe ${probeKey} ${new Date().toISOString()}\n`);
  const checks: AccessCheck[] = [];
  const skipped = (name: AccessCheckName, because: string) => checks.push({ name, ok: false, detail: `skipped: ${because}` });

  let written = false;
  try {
    await remote.put(probeKey, Readable.from([body]), { contentLength: body.length, contentType: 'text/plain' });
    written = true;
    checks.push({ name: 'write', ok: true });
  } catch (err) {
    checks.push({ name: 'write', ok: false, detail: messageOf(err) });
  }

  if (!written) {
    skipped('read', 'write failed');
    skipped('list', 'write failed');
    skipped('delete', 'write failed');
  } else {
    try {
      const got = await readAll(await remote.get(probeKey));
      checks.push(
        got.equals(body)
          ? { name: 'read', ok: true }
          : { name: 'read', ok: false, detail: `read ${got.length} bytes that differ from the ${body.length} written` },
      );
    } catch (err) {
      checks.push({ name: 'read', ok: false, detail: messageOf(err) });
    }
    try {
      let seen = false;
      for await (const o of remote.list(PROBE_PREFIX)) if (o.key === probeKey) seen = true;
      checks.push(
        seen ? { name: 'list', ok: true } : { name: 'list', ok: false, detail: `the probe ${probeKey} is missing from the listing` },
      );
    } catch (err) {
      checks.push({ name: 'list', ok: false, detail: messageOf(err) });
    }
    try {
      await remote.delete(probeKey);
      const left = await remote.stat(probeKey);
      checks.push(
        left ? { name: 'delete', ok: false, detail: `the probe ${probeKey} is still there after delete` } : { name: 'delete', ok: true },
      );
    } catch (err) {
      checks.push({ name: 'delete', ok: false, detail: `${messageOf(err)} (remove ${remote.urlOf(probeKey)} by hand)` });
    }
  }

  const warnings: string[] = [];
  let lifecycle: InitBucketReport['lifecycle'];
  if (options.lifecycleDays !== undefined) {
    try {
      await remote.setLifecycle(options.lifecycleDays);
      lifecycle = 'installed';
    } catch (err) {
      // A server without lifecycle rules (versitygw) is no failure of the bucket: pgbak's own retention remains.
      if (!isAppError(err) || err.code !== 'storage-unsupported') throw err;
      lifecycle = 'unsupported';
      warnings.push(lifecycleUnsupportedWarning(err.message));
    }
    if (lifecycle === 'installed') {
      warnings.push(LIFECYCLE_WARNING);
      warnings.push("the lifecycle rule replaces the bucket's existing lifecycle configuration");
      if (remote.prefix === '') {
        warnings.push(`STORAGE_PREFIX is empty: the rule expires every object in bucket ${remote.bucket}, not only backups`);
      }
    }
  }
  const objectLock = options.objectLock ? ((await remote.objectLockEnabled()) ? ('enabled' as const) : undefined) : undefined;
  return { location: remote.location, bucket, checks, ok: checks.every((c) => c.ok), probeKey, lifecycle, objectLock, warnings };
}

/**
 * The bucket of a job's storage. A bare bucket backend is accepted too, until cli/commands/init.ts
 * hands over a JobStorage (through api/init-bucket.ts).
 */
function bucketOf(storage: JobStorage | BucketBackend): BucketBackend {
  const remote = 'location' in storage ? storage : storage.remote;
  if (!(remote instanceof S3Backend)) {
    throw new UsageError('pgbak init prepares a bucket, and none is configured', { hint: 'set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY' });
  }
  return remote;
}
