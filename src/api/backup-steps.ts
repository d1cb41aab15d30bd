import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { manifestKey, runKey } from '../catalog/backup-name.js';
import { claimName, type RunRecord } from '../catalog/run-record.js';
import type { StoredKey } from '../catalog/claim-backup-name.js';
import {
  backupUrl,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  serializeManifest,
  type Manifest,
  type StoredFile,
  type TableCount,
} from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { AppError, toAppError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import type { CompressionPlan } from '../pipeline/compression.js';
import { ageEncryptStage, type AgeRecipients } from '../pipeline/age.js';
import { gpgEncryptStage, type GpgKey } from '../pipeline/gpg.js';
import { streamToStorage, type StreamToStorageResult } from '../pipeline/stream-to-storage.js';
import type { ServerInfo } from '../postgres/connection.js';
import type { BackupProgressTracker } from '../postgres/copy-progress.js';
import { countRows, pgDumpallGlobalsStage, pgDumpStage } from '../postgres/pg-dump.js';
import { siblingTool, type PgTool } from '../postgres/pg-tools.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { TOOL_VERSION } from '../version.js';

/**
 * The steps of one backup run (api/backup.ts runs them in order): the globals, the dump, the
 * manifest LAST, and the removal of what a failed run stored.
 */

type Written = StoredKey;

/** A further bucket target of a run (STORAGE_2_*): stored to until its first failure. */
export interface ExtraTarget {
  readonly name: string;
  readonly bucket: StorageBackend;
  /** Its Object Lock mode: its manifest records the lock. */
  readonly objectLock?: 'governance' | 'compliance' | undefined;
  /** The bucket while uploads go on; undefined after its first failure. */
  live: StorageBackend | undefined;
  error: AppError | undefined;
}

/** Where a run stores (BACKUP_DIR always, the bucket until its first failure) and what it stored there. */
export class RunTargets {
  readonly written: Written[] = [];
  /** Further bucket targets, each failing on its own (the run is then partial, naming it). */
  readonly extra: ExtraTarget[];
  /** A failed upload's own cleanup, awaited after the local files are removed. */
  readonly uploadCleanup: Promise<void>[] = [];
  /** The bucket while uploads go on; undefined after the first failure (the local backup goes on). */
  remote: StorageBackend | undefined;
  uploadError: AppError | undefined;

  constructor(
    readonly local: StorageBackend,
    /** The bucket this run uploads to (undefined with --no-upload or no bucket). */
    readonly bucket: StorageBackend | undefined,
    /** STORAGE_OBJECT_LOCK: the bucket's artifact, globals and manifest are locked until this date. */
    readonly retainUntil?: Date | undefined,
    extra: readonly { name: string; backend: StorageBackend; objectLock?: 'governance' | 'compliance' | undefined }[] = [],
  ) {
    this.remote = bucket;
    this.extra = extra.map((e) => ({ name: e.name, bucket: e.backend, objectLock: e.objectLock, live: e.backend, error: undefined }));
  }

  /** The further targets still being stored to. */
  liveExtra(): ExtraTarget[] {
    return this.extra.filter((e) => e.live);
  }

  /** A further target failed: remember its first error, and store nothing more there. */
  failExtra(t: ExtraTarget, err: AppError): void {
    t.error ??= err;
    t.live = undefined;
  }

  /** The bucket failed: remember the first error, and upload nothing more. */
  readonly onRemoteFailure = (err: AppError): void => {
    this.uploadError ??= err;
    this.remote = undefined;
  };

  /** Record `key` as stored locally and, when the put there succeeded, in the bucket. */
  stored(
    key: string,
    r: { remote: unknown; remoteError: AppError | undefined; more?: readonly { remote: unknown; remoteError: AppError | undefined }[] },
    extra: readonly ExtraTarget[] = [],
  ): void {
    this.written.push({ backend: this.local, key });
    if (r.remote) this.written.push({ backend: this.remote!, key });
    if (r.remoteError) this.onRemoteFailure(r.remoteError);
    extra.forEach((t, i) => {
      const m = r.more?.[i];
      if (m?.remote) this.written.push({ backend: t.bucket, key });
      if (m?.remoteError) this.failExtra(t, m.remoteError);
    });
  }
}

/** Step 1: the globals (roles, tablespaces), encrypted like the dump, in every location. */
export async function globalsStep(o: {
  pgDump: PgTool;
  url: string;
  key: string;
  gpgKey: GpgKey | undefined;
  /** AGE_RECIPIENTS, resolved (never together with gpgKey). */
  age?: AgeRecipients | undefined;
  targets: RunTargets;
  warnings: string[];
  signal: AbortSignal | undefined;
  logger: Logger;
}): Promise<StoredFile> {
  const tool = await siblingTool(o.pgDump, 'pg_dumpall', true);
  const extra = o.targets.liveExtra();
  const r = await storeGlobals(tool, o.url, o.key, o.targets, extra, { gpgKey: o.gpgKey, age: o.age }, o.signal, o.logger);
  o.targets.stored(o.key, r, extra);
  if (r.warning) o.warnings.push(r.warning);
  return { key: o.key, size: r.size, sha256: r.sha256 };
}

/** Step 2: pg_dump | [compress] | [gpg] into every location, with row counts taken in the same snapshot. */
export async function dumpStep(o: {
  job: JobConfig;
  client: pg.Client;
  tables: { schema: string; table: string; bytes: number }[];
  pgDump: PgTool;
  plan: CompressionPlan;
  snapshot: string | undefined;
  gpgKey: GpgKey | undefined;
  age?: AgeRecipients | undefined;
  key: string;
  partSize: number;
  targets: RunTargets;
  progress: BackupProgressTracker;
  warnings: string[];
  signal: AbortSignal | undefined;
  logger: Logger;
}): Promise<{ dump: StreamToStorageResult; tables: TableCount[] | null }> {
  const { job, targets, progress } = o;
  const counting = job.backup.rowCounts ? countRows(o.client, o.tables, o.signal) : Promise.resolve(null);
  counting.catch(() => undefined);
  progress.watchCopy(job.databaseUrl);
  const stages = [o.plan.streamStage(), encryptStage(o)].filter((s) => s !== undefined);
  const extra = targets.liveExtra();
  const dump = await streamToStorage({
    more: extra.map((e) => e.bucket),
    source: pgDumpStage({
      tool: o.pgDump,
      url: job.databaseUrl,
      compressionArgs: o.plan.pgDumpArgs,
      snapshot: o.snapshot,
      onTable: (t) => progress.onTable(t),
    }),
    stages,
    key: o.key,
    local: targets.local,
    remote: targets.remote,
    remoteTimeoutMs: targets.bucket?.timeoutMs,
    remotePartSize: o.partSize,
    remoteRetainUntil: targets.retainUntil,
    deferRemoteCleanup: (cleanup) => targets.uploadCleanup.push(cleanup),
    signal: o.signal,
    onBytes: (n) => progress.onBytes(n),
    logger: o.logger,
  });
  targets.stored(o.key, dump, extra);
  let tables: TableCount[] | null = null;
  try {
    tables = await counting;
  } catch (err) {
    o.warnings.push(`row counts unavailable: ${toAppError(err).message}`);
  }
  return { dump, tables };
}

/** The manifest of a finished dump (written LAST: only it makes the backup complete). */
export function buildManifest(o: {
  job: JobConfig;
  base: string;
  started: Date;
  finished: Date;
  server: ServerInfo;
  pgDump: PgTool;
  plan: CompressionPlan;
  encrypt: boolean;
  gpgKey: GpgKey | undefined;
  age?: AgeRecipients | undefined;
  artifact: StoredFile;
  globals: StoredFile | null;
  tables: TableCount[] | null;
  runId: string;
  /** STORAGE_OBJECT_LOCK's mode and the date the bucket's objects are locked until. */
  objectLock?: { mode: 'governance' | 'compliance'; retainUntil: Date } | undefined;
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
    encryption: !o.encrypt
      ? null
      : o.age
        ? { method: 'age', recipients: o.age.recipients }
        : { method: 'gpg', recipient: job.gpgRecipient!, fingerprint: o.gpgKey!.fingerprint },
    artifact: o.artifact,
    globals: o.globals,
    tables: o.tables,
    runId: o.runId,
    ...(o.objectLock ? { objectLock: { mode: o.objectLock.mode, retainUntil: o.objectLock.retainUntil.toISOString() } } : {}),
    ...(job.serverRun ? { serverRun: { ...job.serverRun, globalsIn: job.serverRun.globalsIn ?? (o.globals ? o.base : null) } } : {}),
  };
}

/**
 * Store the manifest locally, then in the bucket, create-only (a manifest this run did not write
 * is never replaced, nor taken for its own). Returns the artifact's locations; a failed bucket
 * put goes to `onRemoteFailure`.
 */
export async function storeManifest(
  manifest: Manifest,
  local: StorageBackend,
  remote: StorageBackend | undefined,
  onRemoteFailure: (err: AppError) => void,
  signal: AbortSignal | undefined,
  retainUntil?: Date | undefined,
  targets?: RunTargets,
): Promise<string[]> {
  const mKey = manifestKey(manifest.name);
  const body = Buffer.from(serializeManifest(manifest));
  await local.put(mKey, Readable.from([body]), { contentLength: body.length, signal, ifNoneMatch: true });
  const where = (b: StorageBackend) => backupUrl(manifest, (k) => b.urlOf(k));
  const locations = [where(local)];
  if (remote) {
    try {
      await remote.put(mKey, Readable.from([body]), { contentLength: body.length, signal, ifNoneMatch: true, retainUntil });
      locations.push(where(remote));
    } catch (err) {
      onRemoteFailure(toAppError(err));
    }
  }
  // Each further target gets its own manifest, last, once its files are all there.
  for (const t of targets?.liveExtra() ?? []) {
    // Its manifest records its own lock (or none), whatever the first bucket's is.
    const { objectLock: _first, ...unlocked } = manifest;
    const own: Manifest =
      t.objectLock && retainUntil ? { ...unlocked, objectLock: { mode: t.objectLock, retainUntil: retainUntil.toISOString() } } : unlocked;
    const ownBody = Buffer.from(serializeManifest(own));
    try {
      await t.bucket.put(mKey, Readable.from([ownBody]), { contentLength: ownBody.length, signal, ifNoneMatch: true, retainUntil });
      targets!.written.push({ backend: t.bucket, key: mKey });
      locations.push(where(t.bucket));
    } catch (err) {
      targets!.failExtra(t, toAppError(err));
    }
  }
  return locations;
}

/**
 * Claim the run's name (its create-only run record) in each further target too: a target where
 * that fails (unreachable, or the name taken there) is that target's failure, not the run's.
 */
export async function claimExtra(targets: RunTargets, record: RunRecord, signal: AbortSignal | undefined): Promise<void> {
  // Every target at once: each one's failure is its own.
  await Promise.all(
    targets.liveExtra().map(async (t) => {
      try {
        if (await claimName(t.bucket, record, signal)) targets.written.push({ backend: t.bucket, key: runKey(record.name) });
        else
          targets.failExtra(
            t,
            new AppError('name-taken', `${t.bucket.urlOf(runKey(record.name))} is already claimed by another run`, {
              hint: 'give each writer its own STORAGE_2_PREFIX',
            }),
          );
      } catch (err) {
        targets.failExtra(t, toAppError(err));
      }
    }),
  );
}

/**
 * Remove what a run stored, newest first; a removal that fails is a warning (the next prune
 * removes it). With `local` given, its files go first: a bucket that does not answer must not
 * keep them from being removed, and the uploads' own cleanups are awaited before the bucket's.
 */
export async function removeWritten(
  written: Written[],
  uploadCleanup: Promise<void>[],
  what: string,
  logger: Logger,
  warnings: string[],
  local?: StorageBackend,
): Promise<void> {
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

/** The encryption stage of a run: gpg to GPG_RECIPIENT, age to every AGE_RECIPIENTS key, or none. */
export function encryptStage(keys: { gpgKey?: GpgKey | undefined; age?: AgeRecipients | undefined }) {
  if (keys.gpgKey) return gpgEncryptStage(keys.gpgKey);
  return keys.age ? ageEncryptStage(keys.age.recipients) : undefined;
}

async function storeGlobals(
  tool: PgTool,
  url: string,
  key: string,
  targets: RunTargets,
  extra: readonly ExtraTarget[],
  keys: { gpgKey: GpgKey | undefined; age: AgeRecipients | undefined },
  signal: AbortSignal | undefined,
  logger: Logger,
) {
  const attempt = (noRolePasswords: boolean) =>
    streamToStorage({
      source: pgDumpallGlobalsStage({ tool, url, noRolePasswords }),
      stages: [encryptStage(keys)].filter((s) => s !== undefined),
      key,
      local: targets.local,
      remote: targets.remote,
      more: extra.map((e) => e.bucket),
      remoteRetainUntil: targets.retainUntil,
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
