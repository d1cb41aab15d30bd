import { Readable } from 'node:stream';
import { manifestKey, runKey } from '../catalog/backup-name.js';
import { readSmall } from '../catalog/catalog.js';
import { backupUrl, dumpBytes, parseManifest, type Manifest, type StoredFile } from '../catalog/manifest.js';
import { parseRunRecord } from '../catalog/run-record.js';
import type { JobConfig } from '../config/job.js';
import { type AppError, ConflictError, IntegrityError, NotFoundError, PartialError, UsageError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { IntegrityStage } from '../pipeline/integrity-stage.js';
import { toAppError } from '../errors/index.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import type { SilentEndpoints } from '../storage/silent-endpoints.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { retainUntilOf } from '../storage/s3-object-lock.js';
import type { BackupResult } from '../model/backup-result.js';
import { resultError } from '../errors/index.js';

export interface UploadBackupOptions {
  readonly job: JobConfig;
  /** The backup whose local copy is complete and whose upload failed. */
  readonly name: string;
  readonly logger?: Logger | undefined;
  readonly signal?: AbortSignal | undefined;
  /** The job's open storage; opened (and released) here when absent. */
  readonly storage?: JobStorage | undefined;
  /** The run's endpoints that did not answer in time, for the storage opened here (silent-endpoints.ts). */
  readonly silence?: SilentEndpoints | undefined;
}

/**
 * Upload a backup that exists in BACKUP_DIR — the second half of a partial run — instead of
 * dumping the database again: claim its name in the bucket with its own run record (create-only),
 * stream the globals and the artifact from disk, each checked against the manifest's size and
 * sha256 on the way (a mismatch aborts that upload before it completes), and put the manifest
 * last. The result is the run's result: ok with both locations, or partial (exit 3) again.
 */
export async function uploadBackup(options: UploadBackupOptions): Promise<BackupResult> {
  const { job, name } = options;
  const logger = (options.logger ?? silentLogger).child({ database: job.database, backup: name });
  const started = new Date();
  await using storage = openStorage(job, { shared: options.storage, silence: options.silence });
  const { local, remote } = storage;
  let manifest: Manifest | undefined;
  const result = (status: BackupResult['status'], error?: AppError, warnings: string[] = []): BackupResult => {
    const finished = new Date();
    return {
      status,
      job: job.name,
      database: job.database,
      name,
      startedAt: manifest?.startedAt ?? started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: manifest ? finished.getTime() - Date.parse(manifest.startedAt) : finished.getTime() - started.getTime(),
      sizeBytes: manifest && dumpBytes(manifest),
      sha256: manifest?.artifact.sha256,
      encrypted: manifest ? manifest.encryption !== null : false,
      locations:
        status === 'ok' && manifest
          ? [backupUrl(manifest, (k) => local.urlOf(k)), backupUrl(manifest, (k) => remote!.urlOf(k))]
          : manifest
            ? [backupUrl(manifest, (k) => local.urlOf(k))]
            : [],
      error: error && resultError(error),
      systemIdentifier: manifest?.server.systemIdentifier,
      warnings,
    };
  };
  try {
    if (!remote) throw new UsageError('no bucket is configured', { hint: 'set STORAGE_ACCESS_KEY and STORAGE_SECRET_KEY' });
    const text = await readSmall(local, manifestKey(name));
    if (!text || 'tooLarge' in text) throw new NotFoundError(`no manifest of ${name} in ${local.location}`);
    manifest = parseManifest(text.text, local.urlOf(manifestKey(name)));
    if (manifest.database !== job.database) throw new IntegrityError(`${name} is a backup of ${manifest.database}, not of ${job.database}`);
  } catch (err) {
    const e = toAppError(err);
    logger.error('upload retry impossible', { error: e.message });
    return result('failed', e);
  }
  try {
    logger.info('uploading the local backup the bucket lacks');
    // The first bucket, unless this run's manifest is already there (a second target failed, not it).
    if (!(await holdsManifest(remote, manifest))) {
      await copyBackupFiles({
        source: local,
        dest: remote,
        manifest,
        signal: options.signal,
        lock: job.s3?.objectLock,
        days: job.retention.days,
      });
    }
    // Each further target (STORAGE_2_*) that lacks it.
    for (const t of storage.extra ?? []) {
      try {
        if (await holdsManifest(t.backend, manifest)) continue;
        await copyBackupFiles({
          source: local,
          dest: t.backend,
          manifest,
          signal: options.signal,
          lock: t.objectLock,
          days: job.retention.days,
        });
      } catch (err) {
        const e = toAppError(err);
        throw new PartialError(`target ${t.name} failed again: ${e.message}`, { hint: e.hint, cause: e });
      }
    }
    logger.info('upload finished', { location: backupUrl(manifest, (k) => remote.urlOf(k)) });
    return result('ok', undefined, [
      `uploaded by a later attempt (${((Date.now() - started.getTime()) / 1000).toFixed(1)} s), without dumping again`,
    ]);
  } catch (err) {
    const e = toAppError(err);
    logger.error('upload retry failed', { error: e.message });
    // As after the first attempt: whatever made it to the bucket is pgbak's (its run record), and
    // without the manifest it is only a leftover that prune removes.
    return result(
      'partial',
      new PartialError(`backup kept locally, but the upload failed again: ${e.message}`, { hint: e.hint, cause: e }),
    );
  }
}

/**
 * Copy one backup from `source` to `dest` (`pgbak upload`, `pgbak copy`): its run record first
 * (create-only; one already there must be this run's), then the globals and the artifact, streamed
 * and each checked against the manifest's size and sha256 on the way (a mismatch aborts that put
 * before it completes), then the manifest, last. With `lock` (STORAGE_OBJECT_LOCK of `dest`),
 * every object is locked as the first attempt would have been, unless that date has passed.
 */
export async function copyBackupFiles(o: {
  source: StorageBackend;
  dest: StorageBackend;
  manifest: Manifest;
  signal: AbortSignal | undefined;
  lock?: 'governance' | 'compliance' | undefined;
  days: number;
}): Promise<void> {
  const { source, dest, manifest } = o;
  await claimInBucket(source, dest, manifest.name, o.signal);
  // A directory-format backup (BACKUP_JOBS): every file it lists, toc.dat (its artifact) among them.
  const files: StoredFile[] = [...(manifest.globals ? [manifest.globals] : []), ...(manifest.directory?.files ?? [manifest.artifact])];
  const until = o.lock ? retainUntilOf(new Date(manifest.startedAt), o.days) : undefined;
  const retainUntil = until && until.getTime() > Date.now() ? until : undefined;
  // The manifest records the lock of the copy it sits beside: none in a bucket without it.
  const { objectLock: _sourceLock, ...unlocked } = manifest;
  const copied: Manifest =
    o.lock && retainUntil ? { ...manifest, objectLock: { mode: o.lock, retainUntil: retainUntil.toISOString() } } : unlocked;
  for (const file of files) {
    const check = new IntegrityStage({ label: source.urlOf(file.key), size: file.size, sha256: file.sha256 });
    const stream = await source.get(file.key, { signal: o.signal });
    stream.on('error', (err) => check.destroy(err));
    await dest.put(file.key, stream.pipe(check), { signal: o.signal, retainUntil });
  }
  const body = Buffer.from(JSON.stringify(copied, null, 2) + '\n');
  await dest.put(manifestKey(manifest.name), Readable.from([body]), {
    contentLength: body.length,
    signal: o.signal,
    ifNoneMatch: true,
    retainUntil,
  });
}

/** Does `backend` hold this run's manifest of the backup already? */
async function holdsManifest(backend: StorageBackend, manifest: Manifest): Promise<boolean> {
  const got = await readSmall(backend, manifestKey(manifest.name));
  if (!got || 'tooLarge' in got) return false;
  try {
    const there = parseManifest(got.text, backend.urlOf(manifestKey(manifest.name)));
    return there.runId === manifest.runId && there.artifact.sha256 === manifest.artifact.sha256;
  } catch {
    return false;
  }
}

/** Store the source's run record in the bucket, create-only; one already there must be this run's. */
async function claimInBucket(local: StorageBackend, remote: StorageBackend, name: string, signal: AbortSignal | undefined): Promise<void> {
  const got = await readSmall(local, runKey(name));
  if (!got || 'tooLarge' in got) return; // a backup of pgbak 0.1 has no run record: nothing to claim with
  const mine = parseRunRecord(got.text);
  try {
    await remote.put(runKey(name), Readable.from([Buffer.from(got.text)]), {
      contentLength: Buffer.byteLength(got.text),
      ifNoneMatch: true,
      signal,
    });
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    const theirs = await readSmall(remote, runKey(name));
    const other = theirs && 'text' in theirs ? parseRunRecord(theirs.text) : undefined;
    if (mine && other && other.runId === mine.runId) return; // an earlier attempt of this run got that far
    throw new ConflictError(
      `${remote.urlOf(runKey(name))} was claimed by another run (${other ? `${other.host}, pid ${other.pid}` : 'unknown'})`,
      {
        hint: 'another writer uses this bucket prefix: give each host its own STORAGE_PREFIX',
      },
    );
  }
}
