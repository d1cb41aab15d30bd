import type { JobConfig } from '../config/job.js';
import { redact } from '../logging/redact.js';
import { AppError, DatabaseError, ExitCode, IntegrityError, UsageError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { toAppError } from '../errors/index.js';
import { withDatabase } from '../postgres/connection.js';
import { applyGlobals, type GlobalsResult } from '../postgres/globals.js';
import { findPgTool, majorOf, siblingTool, type PgTool } from '../postgres/pg-tools.js';
import { createDatabase, databaseOf, dropDatabase, inspectTarget, type TargetState } from '../postgres/target-database.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import type { Manifest } from '../catalog/manifest.js';
import type { CatalogEntry } from '../catalog/catalog.js';
import { CatalogSource, findByName, findLatest, requireCopies, type SourceBackends, type SourceCopy } from '../catalog/find-backup.js';
import { readGlobals } from '../pipeline/check-stored.js';
import { requireDecryptionKey } from '../pipeline/decrypt.js';
import { jobIdentity } from './identity.js';
import { sourceBackendsOf } from './target-source.js';
import { runRestore, type RestoreMode, type RestoreProgress, type RunRestoreOptions, type RunRestoreResult } from './restore-run.js';

export type { RestoreProgress } from './restore-run.js';

export interface RestoreOptions {
  readonly job: JobConfig;
  /** A backup name (or one of its file names); or `latest`. */
  readonly name?: string | undefined;
  readonly latest?: boolean | undefined;
  /** A database URL, or a database name on the job's server (DATABASE_URL with that database). */
  readonly target: string;
  /** Read only this place: `local`, `remote` (the first bucket) or a bucket target's name (default: local first, else the first bucket). */
  readonly from?: string | undefined;
  /** Parallel pg_restore jobs (default 1: streaming, no spool file). */
  readonly jobs?: number | undefined;
  /** Create the target database when it does not exist. */
  readonly create?: boolean | undefined;
  /** Restore over a non-empty database without asking. */
  readonly yes?: boolean | undefined;
  /** Apply the backup's globals (roles) first, keeping roles that already exist as they are. */
  readonly withGlobals?: boolean | undefined;
  /** Asked (on a TTY) before restoring over a non-empty database; false cancels. */
  readonly confirm?: ((question: string) => Promise<boolean>) | undefined;
  /** Where a spool file for --jobs may go (default: BACKUP_DIR, which has room for backups). */
  readonly spoolDir?: string | undefined;
  readonly logger?: Logger | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: RestoreProgress) => void) | undefined;
  /** The job's open storage; opened (and released) here when absent. */
  readonly storage?: JobStorage | undefined;
}

export interface RestoreResult {
  readonly name: string;
  /** The database that was backed up. */
  readonly database: string;
  /** The server it was backed up from (its system identifier, when recorded) and the host that made the backup. */
  readonly server: { readonly systemIdentifier: string | null; readonly host: string; readonly version: string };
  readonly target: { readonly database: string; readonly url: string; readonly created: boolean; readonly replacedObjects: number };
  readonly source: { readonly where: 'local' | 'remote'; readonly location: string };
  readonly mode: RestoreMode;
  readonly jobs: number;
  readonly singleTransaction: boolean;
  readonly objects: { readonly restored: number; readonly total: number | undefined };
  /** With --with-globals: what applying them did; null otherwise. */
  readonly globals: GlobalsResult | null;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** From the command's start to the restored database (minus time spent waiting for a confirmation): the measured RTO. */
  readonly durationMs: number;
  /** Checking (and spooling) before pg_restore ran. */
  readonly verifyMs: number;
  readonly restoreMs: number;
  readonly warnings: readonly string[];
}

/**
 * The target as a URL: a `postgres://` URL as given (without a password, it borrows DATABASE_URL's
 * when user, host and port are the same), else a database name on the job's server.
 */
export function resolveTargetUrl(job: Pick<JobConfig, 'databaseUrl'>, target: string): string {
  const t = target.trim();
  if (!t) throw new UsageError('--target is empty: give a database name or a postgresql:// URL');
  if (!/^postgres(ql)?:\/\//i.test(t)) return withDatabase(job.databaseUrl, t);
  let u: URL;
  try {
    u = new URL(t);
  } catch {
    throw new UsageError(`--target is not a valid URL: ${redact(t)}`);
  }
  if (!databaseOf(u.toString())) throw new UsageError(`--target ${redact(t)} names no database`);
  const own = new URL(job.databaseUrl);
  if (
    !u.password &&
    own.password &&
    u.hostname === own.hostname &&
    (u.port || '5432') === (own.port || '5432') &&
    (u.username || own.username) === own.username
  ) {
    u.username = own.username;
    u.password = own.password;
  }
  return u.toString();
}

/**
 * Restore a backup: find it (local first, else the bucket), check it against its manifest
 * before the target is touched, then `pg_restore --clean --if-exists` into the target. The
 * duration from start to finish is the measured RTO. Throws an AppError on any failure; a
 * database this run created is dropped again when the restore fails.
 */
export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const { job } = options;
  const started = new Date();
  const jobs = options.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`--jobs must be a whole number of 1 or more (got ${jobs})`);
  if (options.name && options.latest) throw new UsageError('give a backup NAME or --latest, not both');
  if (!options.name && !options.latest) throw new UsageError('which backup? give its NAME or --latest (`pgbak list` shows them)');
  await using storage = openStorage(job, { signal: options.signal, shared: options.storage });
  const backends: SourceBackends = sourceBackendsOf(storage, options.from);
  const targetUrl = resolveTargetUrl(job, options.target);
  const targetDb = databaseOf(targetUrl);
  const logger = (options.logger ?? silentLogger).child({ target: targetDb });
  const warnings: string[] = [];
  try {
    const { entry, copies, manifest } = await pickSource(job, backends, storage.local, options.name, logger, warnings);
    logger.info('restore started', { backup: entry.name, url: redact(targetUrl), jobs });
    await requireDecryptionKey(manifest, job.age.identityFile);

    const pgRestore = await findPgTool('pg_restore', majorOf(manifest.pgDump.version), job.pgTools.pgDumpPath);
    const psql = options.withGlobals ? await siblingTool(pgRestore, 'psql') : undefined;

    // Read-only look at the target: does it exist, is it empty?
    const { state, waitedMs } = await guardTarget(targetUrl, targetDb, entry.name, options);
    // Verified before anything is applied; holds password hashes, so it is never logged.
    const globalsSql = options.withGlobals ? await readGlobals(copies, options.signal, job.age.identityFile) : undefined;

    const setup = new TargetSetup({
      targetUrl,
      targetDb,
      exists: state.exists,
      psql,
      globalsSql,
      signal: options.signal,
      logger,
      warnings,
    });
    let restored: { run: RunRestoreResult; used: SourceCopy };
    try {
      restored = await restoreFromCopies(copies, {
        targetUrl,
        jobs,
        pgRestore,
        spoolDir: options.spoolDir ?? job.backupDir,
        ageIdentityFile: job.age.identityFile,
        beforeTouch: setup.beforeTouch,
        touched: () => setup.touched,
        logger,
        warnings,
        signal: options.signal,
        onProgress: options.onProgress,
      });
    } catch (err) {
      await setup.undo();
      throw err;
    }
    return finished(restored, { entry, started, waitedMs, targetUrl, targetDb, state, setup, jobs, logger, warnings });
  } catch (err) {
    const e = toAppError(err);
    // A person said no at the prompt: nothing failed.
    if (e.code === 'cancelled') {
      logger.info('restore cancelled at the prompt; the target was not changed');
      throw e;
    }
    logger.error('restore failed', {
      error: e.message,
      ...(e.hint ? { hint: e.hint } : {}),
      seconds: ((Date.now() - started.getTime()) / 1000).toFixed(1),
    });
    throw e;
  }
}

/** The backup to restore (a name, or the job's newest) and its readable copies, best first. */
async function pickSource(
  job: JobConfig,
  backends: SourceBackends,
  local: StorageBackend,
  name: string | undefined,
  logger: Logger,
  warnings: string[],
): Promise<{ entry: CatalogEntry; copies: SourceCopy[]; manifest: Manifest }> {
  const warn = (w: string, shown = w) => {
    logger.warn(w);
    warnings.push(shown);
  };
  const source = new CatalogSource(backends);
  let entry: CatalogEntry;
  if (name) {
    entry = await findByName(source, name);
  } else {
    const identity = await jobIdentity(job, { local });
    const choice = await findLatest(source, { prefix: job.filePrefix, identity });
    entry = choice.entry;
    for (const s of choice.skipped) warn(s);
  }
  for (const w of source.warnings) warn(w);
  if (entry.database !== undefined && entry.database !== job.database) {
    warn(`${entry.name} is a backup of database ${entry.database}, not of this job's database ${job.database}`);
  }
  const { copies, skipped } = requireCopies(entry, source.backends);
  for (const s of skipped) warn(`skipping a copy: ${s}`, `skipped a copy: ${s}`);
  return { entry, copies, manifest: copies[0]!.manifest };
}

/**
 * Refuse a target that is missing (without --create) or not empty (without --yes or a person's
 * confirmation). `waitedMs` is the time spent waiting for that person: not part of the RTO.
 */
async function guardTarget(
  targetUrl: string,
  targetDb: string,
  name: string,
  options: RestoreOptions,
): Promise<{ state: TargetState; waitedMs: number }> {
  const state = await inspectTarget(targetUrl);
  if (!state.exists && !options.create) {
    throw new DatabaseError('db-missing', `target database ${targetDb} does not exist (${redact(targetUrl)})`, {
      hint: 'add --create to create it',
    });
  }
  let waitedMs = 0;
  if (state.objects > 0 && !options.yes) {
    const question = `database ${targetDb} on ${serverOf(targetUrl)} holds ${state.objects} objects; restoring ${name} drops and replaces the objects of the backup. Continue?`;
    if (!options.confirm) {
      throw new UsageError(
        `target database ${targetDb} is not empty (${state.objects} objects): restoring would drop and replace the objects of the backup`,
        {
          hint: 'pass --yes to restore over it, or restore into a new database with --create',
        },
      );
    }
    const asked = Date.now();
    const yes = await options.confirm(question);
    waitedMs = Date.now() - asked;
    if (!yes) throw new AppError('cancelled', 'restore cancelled; the target was not changed', { exitCode: ExitCode.usage });
  }
  return { state, waitedMs };
}

/**
 * Restore from the first copy that works: a copy that fails its checksum before the target was
 * touched hands over to the next one (a warning); any other failure is thrown.
 */
async function restoreFromCopies(
  copies: readonly SourceCopy[],
  o: Omit<RunRestoreOptions, 'manifest' | 'copy'> & { touched: () => boolean; warnings: string[] },
): Promise<{ run: RunRestoreResult; used: SourceCopy }> {
  const { touched, warnings, ...common } = o;
  for (const [i, copy] of copies.entries()) {
    try {
      return { run: await runRestore({ ...common, manifest: copy.manifest, copy }), used: copy };
    } catch (err) {
      const next = copies[i + 1];
      if (!(err instanceof IntegrityError) || touched() || !next) throw err;
      o.logger.warn(`${err.message}; trying ${next.backend.urlOf(next.key)}`);
      warnings.push(`${err.message} (restored from ${next.where} instead)`);
    }
  }
  throw new AppError('internal', 'no copy to restore from');
}

/**
 * What is done to the target just before pg_restore touches it (`beforeTouch`): create it when
 * missing, apply the globals (their failures are warnings). `undo` drops a database it created.
 */
class TargetSetup {
  created = false;
  touched = false;
  globals: GlobalsResult | undefined;

  constructor(
    private readonly o: {
      targetUrl: string;
      targetDb: string;
      exists: boolean;
      psql: PgTool | undefined;
      globalsSql: string | undefined;
      signal: AbortSignal | undefined;
      logger: Logger;
      warnings: string[];
    },
  ) {}

  readonly beforeTouch = async (): Promise<void> => {
    const { targetUrl, targetDb, logger } = this.o;
    this.touched = true;
    if (!this.o.exists) {
      await createDatabase(targetUrl, targetDb);
      this.created = true;
      logger.info('created the target database', { database: targetDb });
    }
    if (this.o.globalsSql !== undefined && this.o.psql) {
      const globals = await applyGlobals({ psql: this.o.psql, targetUrl, sql: this.o.globalsSql, signal: this.o.signal });
      this.globals = globals;
      logger.info('globals applied', { created: globals.created.join(',') || '-', existing: globals.existing.length });
      for (const e of globals.errors) {
        logger.warn(`globals: ${e}`);
        this.o.warnings.push(`globals: ${e}`);
      }
    }
  };

  /** Drop the target again when this run created it (a failure to drop is a warning). */
  async undo(): Promise<void> {
    if (!this.created) return;
    const { targetUrl, targetDb, logger } = this.o;
    await dropDatabase(targetUrl, targetDb).then(
      () => logger.info('dropped the target database this run had created', { database: targetDb }),
      (e: unknown) =>
        logger.warn('could not drop the target database this run had created', { database: targetDb, error: toAppError(e).message }),
    );
  }
}

/** Log the finished restore and describe it; its duration, less the time a person took to confirm, is the RTO. */
function finished(
  restored: { run: RunRestoreResult; used: SourceCopy },
  o: {
    entry: CatalogEntry;
    started: Date;
    waitedMs: number;
    targetUrl: string;
    targetDb: string;
    state: TargetState;
    setup: TargetSetup;
    jobs: number;
    logger: Logger;
    warnings: string[];
  },
): RestoreResult {
  const { run: r, used } = restored;
  const { entry, started, waitedMs, targetUrl, targetDb, state, setup, jobs, logger, warnings } = o;
  const finishedAt = new Date();
  const durationMs = finishedAt.getTime() - started.getTime() - waitedMs;
  logger.info('restore finished', {
    backup: entry.name,
    objects: r.objects,
    seconds: (durationMs / 1000).toFixed(1),
    rto: `${(durationMs / 1000).toFixed(1)}s`,
    verifySeconds: (r.verifyMs / 1000).toFixed(1),
    restoreSeconds: (r.restoreMs / 1000).toFixed(1),
  });
  return {
    name: entry.name,
    database: used.manifest.database,
    server: {
      systemIdentifier: used.manifest.server.systemIdentifier ?? null,
      host: used.manifest.host,
      version: used.manifest.server.version,
    },
    target: { database: targetDb, url: redact(targetUrl), created: setup.created, replacedObjects: state.objects },
    source: { where: used.where, location: used.backend.urlOf(used.key) },
    mode: r.mode,
    jobs,
    singleTransaction: r.singleTransaction,
    objects: { restored: r.objects, total: r.toc?.entries },
    globals: setup.globals ?? null,
    startedAt: started.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs,
    verifyMs: r.verifyMs,
    restoreMs: r.restoreMs,
    warnings,
  };
}

/** `host:port` of a connection URL, for a question a person answers (never its credentials). */
function serverOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}`;
  } catch {
    return 'the target server';
  }
}
