import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { artifactKey, baseName, globalsKey, manifestKey } from '../catalog/backup-name.js';
import { claimBackupName, type StoredKey } from '../catalog/claim-backup-name.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, serializeManifest, type Manifest, type StoredFile, type TableCount } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { AppError, InterruptedError, PartialError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { compressionPlan, type CompressionPlan } from '../pipeline/compression.js';
import { gpgEncryptStage, type GpgKey } from '../pipeline/gpg.js';
import { streamToStorage } from '../pipeline/stream-to-storage.js';
import { toAppError } from '../errors/index.js';
import { countRows, exportSnapshot, pgDumpallGlobalsStage, pgDumpStage } from '../postgres/pg-dump.js';
import { siblingTool, type PgTool } from '../postgres/pg-tools.js';
import type { ServerInfo } from '../postgres/connection.js';
import { acquireLock } from '../catalog/run-lock.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import type { BackupResult } from '../model/backup-result.js';
import { resultError } from '../errors/index.js';
import { BackupProgressTracker, type BackupProgress } from '../postgres/copy-progress.js';
import { explainInterrupted, removeKilledRunTemps } from './backup-cleanup.js';
import { preflight } from './preflight.js';
import { TOOL_VERSION } from '../version.js';

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
  /** The run's storage; opened (and released) here when absent. */
  readonly storage?: JobStorage | undefined;
}

/** Auto part size: 10 000 parts cover twice the database's on-disk size; 8 MiB at least. */
export function autoPartSize(databaseBytes: number): number {
  const MiB = 1024 * 1024;
  return Math.max(8 * MiB, Math.ceil((databaseBytes * 2) / 10_000 / MiB) * MiB);
}

type Written = StoredKey;

/**
 * One backup run: lock → preflight → globals → pg_dump | [compress] | [gpg] | sha256 | tee(file,
 * upload) → manifest LAST. Returns a BackupResult for every outcome (failures included, with the
 * error), so callers can notify and record metrics; nothing half-made stays under a final name.
 */
export async function backup(options: BackupOptions): Promise<BackupResult> {
  if (options.storage) return backupWith(options, options.storage);
  await using storage = openStorage(options.job, { signal: options.signal });
  return backupWith(options, storage);
}

async function backupWith(options: BackupOptions, storage: JobStorage): Promise<BackupResult> {
  const { job } = options;
  const logger = (options.logger ?? silentLogger).child({ database: job.database });
  const now = options.now ?? (() => new Date());
  const started = now();
  const encrypt = options.encrypt !== false && Boolean(job.gpgRecipient);
  const upload = options.upload !== false && Boolean(job.s3);
  let base = baseName(job.filePrefix, started);
  const runId = randomBytes(8).toString('hex');
  const written: Written[] = [];
  /** A failed upload's own cleanup, awaited after the local files are removed. */
  const uploadCleanup: Promise<void>[] = [];
  const warnings: string[] = [];
  let lockRelease: (() => void) | undefined;
  let client: pg.Client | undefined;
  let progress: BackupProgressTracker | undefined;
  let size: number | undefined;
  let sha256: string | undefined;
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
    const pre = await preflight({ job, encrypt, upload, stopOnFailure: true, keepClient: true, optionalBucket: true, signal: options.signal, storage });
    if (pre.error) throw pre.error;
    if (options.signal?.aborted) throw new InterruptedError();
    client = pre.client!;
    const server = pre.server!;
    systemIdentifier = server.systemIdentifier;
    const pgDump = pre.pgDump!;
    const plan = compressionPlan(job.compression, pgDump.major);
    const partSize = job.s3?.partSize ?? autoPartSize(server.databaseSize);
    const local = storage.local;
    const remoteBackend = upload ? storage.remote : undefined;
    let remote: StorageBackend | undefined = remoteBackend;
    let uploadError: AppError | undefined;

    const onRemoteFailure = (err: AppError) => {
      uploadError ??= err;
      remote = undefined; // the local backup goes on; later files are not uploaded either
    };
    if (pre.bucketError) {
      logger.warn('bucket unreachable; backing up locally only', { error: pre.bucketError.message });
      onRemoteFailure(pre.bucketError);
    }

    // Claim a name in every location before anything else is stored (see run-record.ts).
    const claimed = await claimBackupName({
      prefix: job.filePrefix,
      started,
      keysOf: (name) => [artifactKey(name, { streamCompression: plan.streamMethod, encrypted: encrypt }), globalsKey(name, encrypt), manifestKey(name)],
      fields: { runId, job: job.name, database: job.database, systemIdentifier, startedAt: started.toISOString() },
      local,
      remote: () => remote,
      onRemoteFailure,
      signal: options.signal,
    });
    base = claimed.name;
    written.push(...claimed.written);
    if (claimed.moved) logger.warn(`${claimed.moved} was already claimed by another run (a second writer to the same place); this backup is ${base}`);
    const artKey = artifactKey(base, { streamCompression: plan.streamMethod, encrypted: encrypt });

    const snapshot = await exportSnapshot(client);

    // 1. Globals (roles, tablespaces), encrypted like the dump.
    let globals: StoredFile | null = null;
    if (job.settings.BACKUP_GLOBALS) {
      const tool = await siblingTool(pgDump, 'pg_dumpall');
      const key = globalsKey(base, encrypt);
      const r = await storeGlobals(tool, job.databaseUrl, key, local, remote, pre.gpgKey, options.signal, logger);
      written.push({ backend: local, key });
      if (r.remote) written.push({ backend: remote!, key });
      if (r.remoteError) onRemoteFailure(r.remoteError);
      if (r.warning) warnings.push(r.warning);
      globals = { key, size: r.size, sha256: r.sha256 };
    }

    // 2. The dump, with exact row counts taken in the same snapshot at the same time.
    const counting = job.settings.BACKUP_ROW_COUNTS ? countRows(client, pre.tables ?? [], options.signal) : Promise.resolve(null);
    counting.catch(() => undefined);
    progress = new BackupProgressTracker(pre.tables ?? [], started, options.onProgress);
    progress.watchCopy(job.databaseUrl);
    const stages = [plan.streamStage(), encrypt ? gpgEncryptStage(pre.gpgKey!) : undefined].filter((s) => s !== undefined);
    const dump = await streamToStorage({
      source: pgDumpStage({ tool: pgDump, url: job.databaseUrl, compressionArgs: plan.pgDumpArgs, snapshot, onTable: (t) => progress?.onTable(t) }),
      stages,
      key: artKey,
      local,
      remote,
      remoteTimeoutMs: remoteBackend?.timeoutMs,
      remotePartSize: partSize,
      deferRemoteCleanup: (cleanup) => uploadCleanup.push(cleanup),
      signal: options.signal,
      onBytes: (n) => progress?.onBytes(n),
      logger,
    });
    written.push({ backend: local, key: artKey });
    if (dump.remote) written.push({ backend: remote!, key: artKey });
    if (dump.remoteError) onRemoteFailure(dump.remoteError);
    size = dump.size;
    sha256 = dump.sha256;
    let tables: TableCount[] | null = null;
    try {
      tables = await counting;
    } catch (err) {
      warnings.push(`row counts unavailable: ${toAppError(err).message}`);
    }
    await client.query('COMMIT').catch(() => undefined);
    await client.end().catch(() => undefined);
    client = undefined;

    // 3. The manifest, LAST: only now is the backup complete.
    const manifest = buildManifest({ job, base, started, finished: now(), server, pgDump, plan, encrypt, gpgKey: pre.gpgKey, artifact: { key: artKey, size: dump.size, sha256: dump.sha256 }, globals, tables, runId });
    locations.push(...(await storeManifest(manifest, local, remote, onRemoteFailure, options.signal)));
    if (uploadError) {
      // Copies in the bucket without their manifest would only be leftovers: remove them (the run
      // record last). What cannot be removed now (the bucket is down) is pgbak's by its run record
      // and the local manifest, so the next prune removes it.
      await removeWritten(written.filter((x) => x.backend === remoteBackend), [], 'left by the failed upload', logger, warnings);
      const e = new PartialError(`backup kept locally, but the upload failed: ${uploadError.message}`, { hint: uploadError.hint, cause: uploadError });
      logger.error('backup partly failed', { backup: base, error: e.message });
      return result('partial', e);
    }
    logger.info('backup finished', { backup: base, bytes: dump.size, sha256: dump.sha256, seconds: ((now().getTime() - started.getTime()) / 1000).toFixed(1), locations: locations.join(' ') });
    return result('ok');
  } catch (err) {
    const e = explainInterrupted(toAppError(err), base);
    // Nothing half-made under a final name: remove whatever this run already stored.
    // Local files first: a bucket that does not answer must not keep them from being removed.
    await removeWritten(written, uploadCleanup, 'of the failed run', logger, warnings, storage.local);
    locations.length = 0;
    size = undefined;
    sha256 = undefined;
    logger.error('backup failed', { backup: base, error: e.message, ...(e.hint ? { hint: e.hint } : {}) });
    if (e.code === 'internal') logger.debug('stack', { stack: (e.cause as Error | undefined)?.stack });
    return result('failed', e);
  } finally {
    await progress?.stop();
    if (client) await client.end().catch(() => undefined);
    lockRelease?.();
  }
}

/** The manifest of a finished dump (written LAST: only it makes the backup complete). */
function buildManifest(o: {
  job: JobConfig;
  base: string;
  started: Date;
  finished: Date;
  server: ServerInfo;
  pgDump: PgTool;
  plan: CompressionPlan;
  encrypt: boolean;
  gpgKey: GpgKey | undefined;
  artifact: StoredFile;
  globals: StoredFile | null;
  tables: TableCount[] | null;
  runId: string;
}): Manifest {
  const { job, server } = o;
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    name: o.base,
    job: job.name,
    database: job.database,
    host: hostname(),
    startedAt: o.started.toISOString(),
    finishedAt: o.finished.toISOString(),
    durationMs: o.finished.getTime() - o.started.getTime(),
    server: { version: server.version, versionNum: server.versionNum, systemIdentifier: server.systemIdentifier },
    pgDump: { version: o.pgDump.version, path: o.pgDump.path },
    tool: { name: 'pgbak', version: TOOL_VERSION },
    compression: { method: job.compression.method, level: job.compression.level, by: o.plan.by },
    encryption: o.encrypt ? { method: 'gpg', recipient: job.gpgRecipient!, fingerprint: o.gpgKey!.fingerprint } : null,
    artifact: o.artifact,
    globals: o.globals,
    tables: o.tables,
    runId: o.runId,
  };
}

/**
 * Store the manifest locally, then in the bucket, create-only (a manifest this run did not write
 * is never replaced, nor taken for its own). Returns the artifact's locations; a failed bucket
 * put goes to `onRemoteFailure`.
 */
async function storeManifest(
  manifest: Manifest,
  local: StorageBackend,
  remote: StorageBackend | undefined,
  onRemoteFailure: (err: AppError) => void,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  const mKey = manifestKey(manifest.name);
  const body = Buffer.from(serializeManifest(manifest));
  await local.put(mKey, Readable.from([body]), { contentLength: body.length, signal, ifNoneMatch: true });
  const locations = [local.urlOf(manifest.artifact.key)];
  if (remote) {
    try {
      await remote.put(mKey, Readable.from([body]), { contentLength: body.length, signal, ifNoneMatch: true });
      locations.push(remote.urlOf(manifest.artifact.key));
    } catch (err) {
      onRemoteFailure(toAppError(err));
    }
  }
  return locations;
}

/**
 * Remove what a run stored, newest first; a removal that fails is a warning (the next prune
 * removes it). With `local` given, its files go first: a bucket that does not answer must not
 * keep them from being removed, and the uploads' own cleanups are awaited before the bucket's.
 */
async function removeWritten(written: Written[], uploadCleanup: Promise<void>[], what: string, logger: Logger, warnings: string[], local?: StorageBackend): Promise<void> {
  const ordered = written.slice().reverse();
  if (local) ordered.sort((a, b) => Number(a.backend !== local) - Number(b.backend !== local));
  for (const w of ordered) {
    if (local && w.backend !== local) await Promise.all(uploadCleanup.splice(0));
    await w.backend.delete(w.key).catch((de: unknown) => {
      const warning = `could not remove ${w.backend.urlOf(w.key)} ${what} (${toAppError(de).message}); the next prune removes it`;
      logger.warn(warning);
      warnings.push(warning);
    });
  }
}

async function storeGlobals(
  tool: PgTool,
  url: string,
  key: string,
  local: StorageBackend,
  remote: StorageBackend | undefined,
  gpgKey: GpgKey | undefined,
  signal: AbortSignal | undefined,
  logger: Logger,
) {
  const attempt = (noRolePasswords: boolean) =>
    streamToStorage({
      source: pgDumpallGlobalsStage({ tool, url, noRolePasswords }),
      stages: gpgKey ? [gpgEncryptStage(gpgKey)] : [],
      key,
      local,
      remote,
      signal,
      logger,
    });
  try {
    return { ...(await attempt(false)), warning: undefined };
  } catch (err) {
    const e = toAppError(err);
    // A non-superuser cannot read pg_authid: store the roles without their passwords instead.
    if (!/pg_authid|permission denied/i.test(e.message)) throw e;
    logger.warn('pg_dumpall cannot read role passwords (not a superuser); storing roles without passwords');
    return { ...(await attempt(true)), warning: 'globals stored without role passwords (the backup user is not a superuser)' };
  }
}
