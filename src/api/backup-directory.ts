import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, rmdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { directoryKey, type EncryptionMethod } from '../catalog/backup-name.js';
import type { StoredFile, TableCount } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { diskFullOf, fsError, toAppError } from '../errors/index.js';
import { formatBytes } from '../model/human-units.js';
import { freeSpaceOf } from '../errors/free-space.js';
import type { Logger } from '../logging/logger.js';
import { forEachLimit } from '../model/for-each-limit.js';
import type { AgeRecipients } from '../pipeline/age.js';
import type { CompressionPlan } from '../pipeline/compression.js';
import type { GpgKey } from '../pipeline/gpg.js';
import { nullSink } from '../pipeline/null-sink.js';
import { streamToStorage } from '../pipeline/stream-to-storage.js';
import type { BackupProgressTracker } from '../postgres/copy-progress.js';
import { countRows, pgDumpStage } from '../postgres/pg-dump.js';
import type { PgTool } from '../postgres/pg-tools.js';
import { processAlive } from '../model/process-alive.js';
import { encryptStage, type RunTargets } from './backup-steps.js';

/**
 * BACKUP_JOBS ≥ 2: `pg_dump --format=directory --jobs=N` into a private temporary directory in
 * BACKUP_DIR (mode 0700; the file system that is sized for backups, never a tmpfs /tmp), then each
 * of its files streamed through the job's stream compression and encryption, checksummed on the
 * way, into every location as `<name>.dir/<file>`, toc.dat first. The temporary directory goes
 * in every case (success, failure, abort); one a killed run left is removed by the next run.
 * The caller writes the manifest, listing every file, last.
 */

/** The temporary directories of directory-format dumps: `.pgbak-dirdump-<pid>-<random>` in BACKUP_DIR. */
const TEMP_PREFIX = '.pgbak-dirdump-';

export interface DirectoryDump {
  /** toc.dat's stored file: the manifest's `artifact`. */
  readonly artifact: StoredFile;
  /** The stored bytes of all files; toc.dat's sha256 (the run's result names it). */
  readonly dump: { readonly size: number; readonly sha256: string };
  /** The manifest's `directory`: every stored file, toc.dat first. */
  readonly directory: { readonly jobs: number; readonly files: StoredFile[] };
  readonly tables: TableCount[] | null;
}

/** The stored name of one file of the directory: `<file>[.zst|.lz4][.gpg|.age]`. */
export function storedFileName(file: string, plan: CompressionPlan, encryption: EncryptionMethod | false): string {
  const comp = plan.streamMethod === 'zstd' ? '.zst' : plan.streamMethod === 'lz4' ? '.lz4' : '';
  return `${file}${comp}${encryption ? `.${encryption}` : ''}`;
}

/** Step 2 with BACKUP_JOBS ≥ 2: the directory-format dump, then its files into every location. */
export async function directoryDumpStep(o: {
  job: JobConfig;
  base: string;
  client: pg.Client;
  tables: { schema: string; table: string; bytes: number }[];
  databaseBytes: number;
  pgDump: PgTool;
  plan: CompressionPlan;
  snapshot: string | undefined;
  encryption: EncryptionMethod | false;
  gpgKey: GpgKey | undefined;
  age?: AgeRecipients | undefined;
  partSize: number;
  targets: RunTargets;
  progress: BackupProgressTracker;
  warnings: string[];
  signal: AbortSignal | undefined;
  logger: Logger;
}): Promise<DirectoryDump> {
  const { job, progress, logger } = o;
  const jobs = job.backup.jobs;
  await mkdir(job.backupDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
    throw fsError(err, 'create directory', job.backupDir);
  });
  await removeKilledDumpDirs(job.backupDir, logger);
  const space = freeSpaceOf(job.backupDir);
  // The compressed dump is usually a fraction of the database's on-disk size; a third is a rough floor.
  if (space && space.free < o.databaseBytes / 3) {
    const w = `BACKUP_JOBS: ${job.backupDir} has ${formatBytes(space.free)} free for the directory-format dump of a ${formatBytes(o.databaseBytes)} database (written there before it is stored); it may not fit`;
    logger.warn(w);
    o.warnings.push(w);
  }
  const temp = await mkdtemp(join(job.backupDir, `${TEMP_PREFIX}${process.pid}-`)).catch((err: unknown) => {
    throw fsError(err, 'create a temporary directory in', job.backupDir);
  });
  try {
    const dir = join(temp, 'dump');
    const counting = job.backup.rowCounts ? countRows(o.client, o.tables, o.signal) : Promise.resolve(null);
    counting.catch(() => undefined);
    progress.watchCopy(job.databaseUrl);
    const t0 = Date.now();
    logger.info('directory-format dump started', { jobs, dir: temp });
    try {
      await pipeline(
        [
          pgDumpStage({
            tool: o.pgDump,
            url: job.databaseUrl,
            compressionArgs: o.plan.pgDumpArgs,
            snapshot: o.snapshot,
            directory: { path: dir, jobs },
            onTable: (t) => progress.onTable(t),
          }),
          nullSink(),
        ],
        { signal: o.signal },
      );
    } catch (err) {
      const e = toAppError(err);
      throw diskFullOf(e, temp) ?? e;
    }
    logger.info('directory-format dump written', { jobs, seconds: ((Date.now() - t0) / 1000).toFixed(1) });
    const files = await storeFiles({ ...o, dir }).catch(async (err: unknown) => {
      await removeLocalFiles(o.targets, o.base);
      throw err;
    });
    let tables: TableCount[] | null = null;
    try {
      tables = await counting;
    } catch (err) {
      o.warnings.push(`row counts unavailable: ${toAppError(err).message}`);
    }
    const size = files.reduce((n, f) => n + f.size, 0);
    return { artifact: files[0]!, dump: { size, sha256: files[0]!.sha256 }, directory: { jobs, files }, tables };
  } finally {
    await rm(temp, { recursive: true, force: true }).catch((err: unknown) =>
      logger.warn('could not remove the temporary dump directory', { dir: temp, error: String(err) }),
    );
  }
}

/** Each file of `dir` (toc.dat first), streamed into every location, BACKUP_JOBS at a time; each temp file goes once stored. */
async function storeFiles(o: {
  job: JobConfig;
  base: string;
  dir: string;
  plan: CompressionPlan;
  encryption: EncryptionMethod | false;
  gpgKey: GpgKey | undefined;
  age?: AgeRecipients | undefined;
  partSize: number;
  targets: RunTargets;
  progress: BackupProgressTracker;
  signal: AbortSignal | undefined;
  logger: Logger;
}): Promise<StoredFile[]> {
  const { targets } = o;
  const names = (await readdir(o.dir)).sort((a, b) => Number(b === 'toc.dat') - Number(a === 'toc.dat') || a.localeCompare(b));
  if (names[0] !== 'toc.dat') throw fsError(new Error('pg_dump wrote no toc.dat'), 'read', o.dir);
  const stored = new Map<string, StoredFile>();
  let total = 0;
  const t0 = Date.now();
  // A file that fails stops the others; the run's clean-up starts only once they all settled.
  await forEachLimit(
    names,
    o.job.backup.jobs,
    async (name, signal) => {
      const key = directoryKey(o.base, storedFileName(name, o.plan, o.encryption));
      const extra = targets.liveExtra();
      const r = await streamToStorage({
        source: createReadStream(join(o.dir, name), { highWaterMark: 1024 * 1024 }),
        stages: [o.plan.streamStage(), encryptStage({ gpgKey: o.gpgKey, age: o.age })].filter((s) => s !== undefined),
        key,
        local: targets.local,
        remote: targets.remote,
        more: extra.map((e) => e.bucket),
        remoteTimeoutMs: targets.bucket?.timeoutMs,
        remotePartSize: o.partSize,
        remoteRetainUntil: targets.retainUntil,
        deferRemoteCleanup: (cleanup) => targets.uploadCleanup.push(cleanup),
        signal,
        logger: o.logger,
      });
      targets.stored(key, r, extra);
      stored.set(name, { key, size: r.size, sha256: r.sha256 });
      total += r.size;
      o.progress.onBytes(total);
      await unlink(join(o.dir, name)).catch(() => undefined);
    },
    o.signal,
  );
  const files = names.map((n) => stored.get(n)!);
  o.logger.info('directory-format dump stored', { files: files.length, bytes: total, seconds: ((Date.now() - t0) / 1000).toFixed(1) });
  return files;
}

/** The temporary dump directories of runs that were killed (their pid is gone from this host). */
async function removeKilledDumpDirs(backupDir: string, logger: Logger): Promise<void> {
  const entries = await readdir(backupDir).catch(() => [] as string[]);
  for (const name of entries) {
    const pid = name.startsWith(TEMP_PREFIX) ? Number(name.slice(TEMP_PREFIX.length).split('-')[0]) : NaN;
    if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    await rm(join(backupDir, name), { recursive: true, force: true }).then(
      () => logger.info('removed the temporary dump directory of a killed run', { dir: join(backupDir, name) }),
      () => undefined,
    );
  }
}

/** A failed run's local `<name>.dir` (the run's cleanup removes the bucket's keys and, again, these). */
async function removeLocalFiles(targets: RunTargets, base: string): Promise<void> {
  const local = targets.local;
  for (const w of targets.written)
    if (w.backend === local && w.key.startsWith(`${base}.dir/`)) await local.delete(w.key).catch(() => undefined);
  const path = local.localPath(directoryKey(base, 'toc.dat'));
  if (path) await rmdir(dirname(path)).catch(() => undefined);
}
