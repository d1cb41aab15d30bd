import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { artifactKey, baseName, directoryKey, globalsKey, manifestKey } from '../catalog/backup-name.js';
import { claimBackupName } from '../catalog/claim-backup-name.js';
import type { JobConfig } from '../config/job.js';
import { newRunRecord } from '../catalog/run-record.js';
import { abortCause, type AppError, PartialError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { compressionPlan } from '../pipeline/compression.js';
import { toAppError } from '../errors/index.js';
import { exportSnapshot } from '../postgres/pg-dump.js';
import { acquireLock } from '../catalog/run-lock.js';
import { openStorage, remoteTargetName, type JobStorage } from '../storage/job-storage.js';
import type { BackupResult } from '../model/backup-result.js';
import type { StoredFile } from '../catalog/manifest.js';
import { resultError } from '../errors/index.js';
import { BackupProgressTracker, type BackupProgress } from '../postgres/copy-progress.js';
import { explainInterrupted, removeKilledRunTemps } from './backup-cleanup.js';
import { buildManifest, claimExtra, dumpStep, globalsStep, removeWritten, RunTargets, storeManifest } from './backup-steps.js';
import { preflight } from './preflight.js';
import { directoryDumpStep, storedFileName } from './backup-directory.js';
import { retainUntilOf } from '../storage/s3-object-lock.js';
import type { SilentEndpoints } from '../storage/silent-endpoints.js';

export type { BackupProgress } from '../postgres/copy-progress.js';

export interface BackupOptions {
  readonly job: JobConfig;
  /** false: --no-upload. */
  readonly upload?: boolean;
  /** false: --no-encrypt. */
  readonly encrypt?: boolean;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
  readonly now?: () => Date;
  readonly onProgress?: (p: BackupProgress) => void;
  /** Called once pg_dump has started (run-job loads the steps after the backup meanwhile). */
  readonly onDumpStarted?: () => void;
  /** The run's storage; opened (and released) here when absent. */
  readonly storage?: JobStorage | undefined;
  /** The run's endpoints that did not answer in time, for the storage opened here (silent-endpoints.ts). */
  readonly silence?: SilentEndpoints | undefined;
}

/**
 * Auto part size of a backup's upload: 10 000 parts cover twice the database's on-disk size; 32 MiB
 * at least. A backup's parts are read back from its local file, so their size costs no memory;
 * fewer, larger parts cost the S3 server and node less per byte (docs/performance.md, 2026-12-06
 * 17:40: (e) 0.18 s faster in 14 of 18 pairs against 8 MiB). Uploads without a local file keep
 * the backend's 8 MiB (their parts are buffered).
 */
export function autoPartSize(databaseBytes: number): number {
  const MiB = 1024 * 1024;
  return Math.max(32 * MiB, Math.ceil((databaseBytes * 2) / 10_000 / MiB) * MiB);
}

/**
 * One backup run: lock → preflight → name → globals beside pg_dump | [compress] | [gpg] | sha256 | tee(file,
 * upload) → manifest LAST. Returns a BackupResult for every outcome (failures included, with the
 * error), so callers can notify and record metrics; nothing half-made stays under a final name.
 */
export async function backup(options: BackupOptions): Promise<BackupResult> {
  if (options.storage) return backupWith(options, options.storage);
  await using storage = openStorage(options.job, { signal: options.signal, silence: options.silence });
  return backupWith(options, storage);
}

async function backupWith(options: BackupOptions, storage: JobStorage): Promise<BackupResult> {
  const { job } = options;
  const logger = (options.logger ?? silentLogger).child({ database: job.database });
  const now = options.now ?? (() => new Date());
  const started = now();
  const encryption = options.encrypt === false ? undefined : job.gpgRecipient ? 'gpg' : job.age.recipients ? 'age' : undefined;
  const encrypt = encryption !== undefined;
  const upload = options.upload !== false && Boolean(job.s3);
  let base = baseName(job.filePrefix, started);
  const runId = randomBytes(8).toString('hex');
  // STORAGE_OBJECT_LOCK: every object of the backup in the bucket is locked until the same date.
  const lockMode = upload ? job.s3?.objectLock : undefined;
  // Each bucket locks with its own mode (S3Backend ignores the date where Object Lock is off).
  const anyLock = lockMode ?? (upload ? job.extraTargets?.find((t) => t.objectLock)?.objectLock : undefined);
  const retainUntil = anyLock ? retainUntilOf(started, job.retention.days) : undefined;
  const targets = new RunTargets(storage.local, upload ? storage.remote : undefined, retainUntil, upload ? storage.extra : []);
  const warnings: string[] = [];
  let lockRelease: (() => void) | undefined;
  let client: pg.Client | undefined;
  let progress: BackupProgressTracker | undefined;
  let size: number | undefined;
  let sha256: string | undefined;
  let files: number | undefined;
  let systemIdentifier: string | undefined;
  const locations: string[] = [];

  const result = (status: BackupResult['status'], error?: AppError): BackupResult => {
    const finished = now();
    return {
      status,
      job: job.name,
      database: job.database,
      name: base,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
      sizeBytes: size,
      sha256,
      ...(files !== undefined ? { files } : {}),
      encrypted: encrypt,
      upload,
      locations,
      error: error && resultError(error),
      systemIdentifier,
      warnings,
    };
  };

  try {
    lockRelease = acquireLock(job.backupDir, job.filePrefix, `backup of ${job.database}`).release;
    await removeKilledRunTemps(storage.local, logger);
    logger.info('backup started', { backup: base, upload, encrypt, compression: `${job.compression.method}:${job.compression.level}` });
    // An unreachable bucket must not cost the local backup: go on without the upload, exit 3.
    const pre = await preflight({
      job,
      encrypt,
      upload,
      stopOnFailure: true,
      keepClient: true,
      optionalBucket: true,
      signal: options.signal,
      storage,
    });
    // Interrupted meanwhile: that is the cause, whatever a check saw of it (a Ctrl-C reaches the
    // whole process group: a gpg key check killed by it looks like a missing key).
    if (options.signal?.aborted) throw abortCause(options.signal);
    if (pre.error) throw pre.error;
    client = pre.client!;
    const server = pre.server!;
    systemIdentifier = server.systemIdentifier;
    const pgDump = pre.pgDump!;
    const plan = compressionPlan(job.compression, pgDump.major);
    const partSize = job.s3?.partSize ?? autoPartSize(server.databaseSize);
    const { local, onRemoteFailure } = targets;
    if (pre.bucketError) {
      logger.warn('bucket unreachable; backing up locally only', { error: pre.bucketError.message });
      onRemoteFailure(pre.bucketError);
    }

    // Claim a name in every location before anything else is stored (see run-record.ts).
    // BACKUP_JOBS ≥ 2: a directory-format dump (backup-directory.ts), its toc.dat the artifact.
    const dirJobs = job.backup.jobs > 1;
    const artifactKeyOf = (name: string) =>
      dirJobs
        ? directoryKey(name, storedFileName('toc.dat', plan, encryption ?? false))
        : artifactKey(name, { streamCompression: plan.streamMethod, encrypted: encryption ?? false });
    const keysOf = (name: string) => [artifactKeyOf(name), globalsKey(name, encryption ?? false), manifestKey(name)];
    const fields = { runId, job: job.name, database: job.database, systemIdentifier, startedAt: started.toISOString() };
    const claimed = await claimBackupName({
      prefix: job.filePrefix,
      started,
      keysOf,
      fields,
      local,
      remote: () => targets.remote,
      onRemoteFailure,
      signal: options.signal,
    });
    base = claimed.name;
    targets.written.push(...claimed.written);
    await claimExtra(targets, newRunRecord({ ...fields, name: base, keys: keysOf(base) }), options.signal);
    if (claimed.moved)
      logger.warn(`${claimed.moved} was already claimed by another run (a second writer to the same place); this backup is ${base}`);
    const artKey = artifactKeyOf(base);

    // Row counts read in the dump's own snapshot; without them pg_dump takes its own at its start.
    const snapshot = job.backup.rowCounts ? await exportSnapshot(client) : undefined;

    // 1. The dump, with exact row counts taken in the same snapshot at the same time; 2. the
    // globals (roles, tablespaces), encrypted like the dump, stored BESIDE it once pg_dump runs
    // (they are small: pg_dump need not wait for them). The first failure of either stops the
    // other, and the run fails with that cause (nothing under a final name: the manifest is last).
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    let firstFailure: { err: unknown } | undefined;
    let globalsRun: Promise<StoredFile | null> = Promise.resolve(null);
    progress = new BackupProgressTracker(pre.tables ?? [], started, options.onProgress);
    const step = {
      job,
      client,
      tables: pre.tables ?? [],
      pgDump,
      plan,
      snapshot,
      gpgKey: encrypt ? pre.gpgKey : undefined,
      age: encrypt ? pre.age : undefined,
      key: artKey,
      partSize,
      targets,
      progress,
      warnings,
      signal,
      logger,
    };
    const dumping = (
      dirJobs
        ? directoryDumpStep({ ...step, base, databaseBytes: server.databaseSize, encryption: encryption ?? false })
        : dumpStep(step).then((d) => ({ ...d, artifact: undefined, directory: undefined }))
    ).catch(async (err: unknown) => {
      firstFailure ??= { err };
      stop.abort();
      // The globals' own cleanup is over before the run removes what it stored.
      await globalsRun.catch(() => undefined);
      throw firstFailure.err;
    });
    dumping.catch(() => undefined);
    // pg_dump starts in the next tick (ChildStage): the globals after it.
    await new Promise((resolve) => setImmediate(resolve));
    options.onDumpStarted?.();
    if (job.backup.globals && !stop.signal.aborted) {
      globalsRun = globalsStep({
        pgDump,
        url: job.databaseUrl,
        key: globalsKey(base, encryption ?? false),
        gpgKey: pre.gpgKey,
        age: pre.age,
        targets,
        warnings,
        signal,
        logger,
      }).catch((err: unknown): never => {
        firstFailure ??= { err };
        stop.abort();
        throw err;
      });
      globalsRun.catch(() => undefined);
    }
    const dumped = await dumping;
    const globals = await globalsRun;
    const { dump, tables, ...dir } = dumped;
    size = dump.size;
    sha256 = dump.sha256;
    files = dir.directory?.files.length;
    if (snapshot) await client.query('COMMIT').catch(() => undefined);
    await client.end().catch(() => undefined);
    client = undefined;

    // 3. The manifest, LAST: only now is the backup complete.
    const built = buildManifest({
      job,
      base,
      started,
      finished: now(),
      server,
      pgDump,
      plan,
      encrypt,
      gpgKey: pre.gpgKey,
      age: pre.age,
      artifact: dir.artifact ?? { key: artKey, size: dump.size, sha256: dump.sha256 },
      globals,
      tables,
      runId,
      objectLock: lockMode && retainUntil && targets.remote ? { mode: lockMode, retainUntil } : undefined,
    });
    const manifest = dir.directory ? { ...built, directory: dir.directory } : built;
    locations.push(...(await storeManifest(manifest, local, targets.remote, onRemoteFailure, options.signal, retainUntil, targets)));
    const failedExtra = targets.extra.filter((t) => t.error);
    for (const t of failedExtra) {
      logger.warn(`target ${t.name} failed; the other copies are complete`, { error: t.error!.message });
      await removeWritten(
        targets.written.filter((x) => x.backend === t.bucket),
        [],
        `left by the failed copy to target ${t.name}`,
        logger,
        warnings,
      );
    }
    const { uploadError } = targets;
    if (!uploadError && failedExtra.length > 0) {
      const first = failedExtra[0]!.error!;
      const kept = [
        'BACKUP_DIR',
        ...(targets.bucket ? [remoteTargetName(storage)] : []),
        ...targets.extra.filter((t) => !t.error).map((t) => t.name),
      ];
      const e = new PartialError(
        `backup complete in ${kept.join(', ')}, but target ${failedExtra.map((t) => t.name).join(', ')} failed: ${first.message}`,
        {
          // The error speaks of STORAGE_*: the further target's settings are STORAGE_2_*.
          hint: `${first.hint?.replace(/\bSTORAGE_(?!2_)/g, 'STORAGE_2_') ?? `check target ${failedExtra[0]!.name}`}; then copy the backup there: pgbak copy ${base} --to ${failedExtra[0]!.name}`,
          cause: first,
        },
      );
      logger.error('backup partly failed', { backup: base, error: e.message });
      return result('partial', e);
    }
    if (uploadError) {
      // Copies in the bucket without their manifest would only be leftovers: remove them (the run
      // record last). What cannot be removed now (the bucket is down) is pgbak's by its run record
      // and the local manifest, so the next prune removes it.
      await removeWritten(
        targets.written.filter((x) => x.backend === targets.bucket),
        [],
        'left by the failed upload',
        logger,
        warnings,
      );
      const e = new PartialError(`backup kept locally, but the upload failed: ${uploadError.message}`, {
        hint: uploadError.hint,
        cause: uploadError,
      });
      logger.error('backup partly failed', { backup: base, error: e.message });
      return result('partial', e);
    }
    logger.info('backup finished', {
      backup: base,
      bytes: dump.size,
      sha256: dump.sha256,
      seconds: ((now().getTime() - started.getTime()) / 1000).toFixed(1),
      locations: locations.join(' '),
    });
    return result('ok');
  } catch (err) {
    const e = explainInterrupted(toAppError(err), base);
    // Nothing half-made under a final name: remove whatever this run already stored.
    // Local files first: a bucket that does not answer must not keep them from being removed.
    await removeWritten(targets.written, targets.uploadCleanup, 'of the failed run', logger, warnings, storage.local);
    locations.length = 0;
    size = undefined;
    sha256 = undefined;
    files = undefined;
    logger.error('backup failed', { backup: base, error: e.message, ...(e.hint ? { hint: e.hint } : {}) });
    if (e.code === 'internal') logger.debug('stack', { stack: (e.cause as Error | undefined)?.stack });
    return result('failed', e);
  } finally {
    await progress?.stop();
    if (client) await client.end().catch(() => undefined);
    lockRelease?.();
  }
}
