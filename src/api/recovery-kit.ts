import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { manifestKey } from '../catalog/backup-name.js';
import { listBackups, readSmall } from '../catalog/catalog.js';
import { CatalogSource, findLatest, requireCopies } from '../catalog/find-backup.js';
import type { Manifest } from '../catalog/manifest.js';
import type { JobConfig, S3Settings } from '../config/job.js';
import { fsError, IntegrityError, toAppError, type AppError } from '../errors/index.js';
import { redact } from '../logging/redact.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { keyringOf } from '../pipeline/gpg.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import { TOOL_VERSION } from '../version.js';
import { jobIdentity } from './identity.js';
import { expandServerJobs } from './server-jobs.js';
import { kitFiles, renderKitReadme, renderSha256Sums, type KitJob } from './recovery-kit-readme.js';

/**
 * `pgbak recovery-kit DIR`: what someone needs at 3 a.m. with no pgbak at hand — a README.md with
 * the exact standard-tool commands (aws or mc, sha256sum, age or gpg, zstd or lz4, psql,
 * pg_restore) that fetch, check and restore the newest good backup of each job, a SHA256SUMS in
 * `sha256sum -c` format, and the keys' fingerprints / recipients and where their secret halves
 * are expected. No secret goes into the kit: credentials are placeholders ($AWS_SECRET_ACCESS_KEY,
 * $PGPASSWORD, $AGE_IDENTITY_FILE) the reader sets.
 */

export interface RecoveryKitJob {
  readonly job: string;
  readonly database: string;
  /** The backup the kit restores; undefined when the job has none that is good. */
  readonly name: string | undefined;
  readonly time: string | undefined;
  /** Where the README fetches it from: the bucket when it holds a good copy, else BACKUP_DIR. */
  readonly source: 'remote' | 'local' | undefined;
  readonly files: readonly { readonly path: string; readonly sha256: string; readonly size: number }[];
  readonly error: AppError | undefined;
}

export interface RecoveryKitResult {
  readonly dir: string;
  readonly readme: string;
  readonly sha256sums: string;
  readonly jobs: readonly RecoveryKitJob[];
}

/** The newest good backup of one job, and what the kit needs to know about it. */
/** The further bucket targets holding a good copy of backup `name`; one that cannot be read is left out. */
async function otherTargets(job: JobConfig, storage: JobStorage, name: string, manifestText: string, signal: AbortSignal | undefined) {
  const out: { name: string; s3: S3Settings; sameManifest: boolean }[] = [];
  for (const t of storage.extra ?? []) {
    const s3 = job.extraTargets?.find((x) => x.name === t.name);
    if (!s3 || signal?.aborted) continue;
    try {
      const there = (await listBackups({ remote: t.backend, prefix: job.filePrefix })).find((e) => e.name === name && e.state === 'good');
      if (!there) continue;
      const read = await readSmall(t.backend, manifestKey(name));
      out.push({ name: t.name, s3, sameManifest: read !== undefined && 'text' in read && read.text === manifestText });
    } catch {
      // Not reachable now: the kit names only the places it saw the backup in.
    }
  }
  return out;
}

async function kitJobOf(job: JobConfig, signal: AbortSignal | undefined): Promise<KitJob> {
  await using storage = openStorage(job, { signal });
  const source = new CatalogSource({ local: storage.local, remote: storage.remote });
  const identity = await jobIdentity(job, { local: storage.local });
  const { entry } = await findLatest(source, { prefix: job.filePrefix, identity });
  const { copies } = requireCopies(entry, source.backends);
  const copy = copies.find((c) => c.where === 'remote') ?? copies[0]!;
  const manifest: Manifest = copy.manifest;
  const read = await readSmall(copy.backend, manifestKey(manifest.name));
  if (!read || !('text' in read)) {
    throw new IntegrityError(
      `the manifest of ${manifest.name} could not be read again from ${copy.backend.urlOf(manifestKey(manifest.name))}`,
    );
  }
  return {
    job: job.name,
    database: job.database,
    manifest,
    manifestSha256: createHash('sha256').update(read.text, 'utf8').digest('hex'),
    manifestSize: Buffer.byteLength(read.text, 'utf8'),
    remote: copies.some((c) => c.where === 'remote') && job.s3 ? job.s3 : undefined,
    localDir: copies.some((c) => c.where === 'local') ? job.backupDir : undefined,
    others: await otherTargets(job, storage, manifest.name, read.text, signal),
    serverUrl: redact(job.databaseUrl),
    ageIdentityFile: job.age.identityFile,
    gpgKeyring: keyringOf(),
  };
}

/** Write the kit into `dir` (created 0700 when missing; README.md and SHA256SUMS replaced). */
export async function recoveryKit(options: {
  jobs: readonly JobConfig[];
  dir: string;
  logger?: Logger;
  signal?: AbortSignal | undefined;
  now?: Date;
}): Promise<RecoveryKitResult> {
  const logger = options.logger ?? silentLogger;
  const dir = resolve(options.dir);
  const found: KitJob[] = [];
  const jobs: RecoveryKitJob[] = [];
  const missing: { job: string; database: string; error: AppError }[] = [];
  // A whole-server job (BACKUP_DATABASES): each database on the server or in storage, as a job of its own.
  const units = options.jobs.some((j) => j.backup.databases)
    ? await expandServerJobs(options.jobs, { discover: true, logger })
    : options.jobs;
  for (const job of units) {
    try {
      const k = await kitJobOf(job, options.signal);
      found.push(k);
      const files = kitFiles(k);
      jobs.push({
        job: job.name,
        database: job.database,
        name: k.manifest.name,
        time: k.manifest.startedAt,
        source: k.remote ? 'remote' : 'local',
        files,
        error: undefined,
      });
      logger.info('recovery kit: job', { job: job.name, backup: k.manifest.name, source: k.remote ? 'bucket' : 'local' });
    } catch (err) {
      const error = toAppError(err);
      logger.error('recovery kit: no backup for job', { job: job.name, error: error.message });
      missing.push({ job: job.name, database: job.database, error });
      jobs.push({ job: job.name, database: job.database, name: undefined, time: undefined, source: undefined, files: [], error });
    }
  }
  // The backups holding globals first: a whole-server run stores its roles in one database's backup, and they come before any table.
  found.sort((a, b) => Number(!a.manifest.globals) - Number(!b.manifest.globals));
  const readme = renderKitReadme({
    jobs: found,
    missing: missing.map((m) => ({ job: m.job, database: m.database, reason: m.error.message })),
    writtenAt: (options.now ?? new Date()).toISOString(),
    host: hostname(),
    version: TOOL_VERSION,
  });
  const sums = renderSha256Sums(found);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomically(join(dir, 'README.md'), readme);
    await writeAtomically(join(dir, 'SHA256SUMS'), sums);
  } catch (err) {
    throw fsError(err, 'write the recovery kit into', dir);
  }
  return { dir, readme: join(dir, 'README.md'), sha256sums: join(dir, 'SHA256SUMS'), jobs };
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, path);
}
