import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { filePrefixOf, type JobConfig } from '../config/job.js';
import { AppError, DatabaseError, ExitCode, resultError, toAppError } from '../errors/index.js';
import type { BackupResult } from '../model/backup-result.js';
import { forEachLimit } from '../model/for-each-limit.js';
import type { ServerRunRef } from '../model/server-run-ref.js';
import { notifyRun, pingStart } from '../notify/notifier.js';
import { withDatabase } from '../postgres/connection.js';
import { chooseDatabases, type DatabaseChoice, listDatabases } from '../postgres/list-databases.js';
import { closestNames } from '../catalog/find-backup.js';
import { editDistance } from '../model/edit-distance.js';
import { destinationOf } from './report-run.js';
import { commandSilence, SilentEndpoints } from '../storage/silent-endpoints.js';
import { runJob, type RunJobOptions } from './run-job.js';

/**
 * A whole-server run (BACKUP_DATABASES): the databases are discovered on the server at each run
 * (templates and databases that refuse connections never), each is backed up as its own unit —
 * the same names, catalog, lock, retention, last-run record and metrics as a one-database job of
 * that database — BACKUP_CONCURRENCY at a time. The server's globals are stored once, in the
 * backup of the first database (DATABASE_URL's own when it is backed up), and every other
 * manifest of the run names that backup. One start ping, one notification, one summary; a
 * database that fails never stops the others.
 */

/** What a whole-server run did. */
export interface ServerRunResult {
  /** The run as one result (the notification's): ok, partial (some databases failed) or failed (all did, or discovery). */
  readonly summary: BackupResult;
  /** One result a database, in name order (the databases named but missing included, failed). */
  readonly results: readonly BackupResult[];
  /** The backup that holds this run's globals; null: none (BACKUP_GLOBALS=false, or every candidate failed). */
  readonly globalsIn: string | null;
  /** Databases left out by BACKUP_EXCLUDE_DATABASES. */
  readonly excluded: readonly string[];
  /** The run's own warnings (an excluded name not on the server), also first in the summary's. */
  readonly warnings: readonly string[];
}

/** Options of {@link runServer}: those of runJob, and how many databases are dumped at once. */
export interface RunServerOptions extends RunJobOptions {
  /** BACKUP_CONCURRENCY. */
  readonly concurrency: number;
  readonly now?: () => Date;
}

/** True when the job backs up a whole server (BACKUP_DATABASES set). */
export function isServerJob(job: JobConfig): boolean {
  return job.backup.databases !== undefined;
}

/**
 * The unit of one database of a whole-server job: a one-database job of that database (named like
 * one: the database, or `<job>/<database>` for a named job of a config file), without its own
 * notifications (the run sends one) and, unless it holds the run's globals, without globals.
 */
export function databaseJob(job: JobConfig, database: string, serverRun?: ServerRunRef, holdsGlobals = false): JobConfig {
  return {
    ...job,
    name: job.name === job.database ? database : `${job.name}/${database}`,
    databaseUrl: withDatabase(job.databaseUrl, database),
    database,
    filePrefix: filePrefixOf(database),
    backup: { ...job.backup, globals: job.backup.globals && holdsGlobals, databases: undefined },
    notify: { ...job.notify, email: [], webhookUrl: undefined, pingUrl: undefined },
    ...(serverRun ? { serverRun } : {}),
  };
}

/**
 * What a whole-server run of `job` would back up now: the databases on its server that its
 * settings choose, in the order a run takes them (the one that holds the globals first: DATABASE_URL's
 * own database when it is chosen, else the first by name), and the failure of each database the
 * settings name but cannot be backed up. Throws when the server's databases cannot be listed.
 */
export async function chooseServerDatabases(job: JobConfig): Promise<ServerChoice> {
  const found = await listDatabases(job.databaseUrl);
  const choice = chooseDatabases(found, job.backup.databases ?? { include: 'all', exclude: [] });
  const own = job.database;
  const order = [...choice.databases].sort((a, b) => (a === own ? -1 : b === own ? 1 : a < b ? -1 : a > b ? 1 : 0));
  const failures = [
    ...choice.missing.map((d) => ({ database: d, error: missingError(d, found.usable) })),
    ...choice.unusable.map((d) => ({ database: d, error: unusableError(d) })),
  ];
  const warnings = choice.unknownExcluded.map(
    (d) => `BACKUP_EXCLUDE_DATABASES names "${d}", which is not on the server (a typo leaves out nothing)`,
  );
  return { ...choice, order, failures, warnings };
}

/** {@link chooseServerDatabases}' answer. */
export interface ServerChoice extends DatabaseChoice {
  /** The databases to back up, the one that holds the run's globals first. */
  readonly order: readonly string[];
  /** Each database named in BACKUP_DATABASES that cannot be backed up, with why. */
  readonly failures: readonly { readonly database: string; readonly error: AppError }[];
  /** What the operator should know but does not fail the run (an excluded name not on the server). */
  readonly warnings: readonly string[];
}

/** Run a whole-server job once. Never throws: a failure is a failed summary. */
export async function runServer(job: JobConfig, options: RunServerOptions): Promise<ServerRunResult> {
  const now = options.now ?? (() => new Date());
  const started = now();
  const logger = options.logger.child({ job: job.name });
  await pingStart(job.notify.pingUrl, logger);
  const results: BackupResult[] = [];
  let excluded: readonly string[] = [];
  let warnings: readonly string[] = [];
  let globalsIn: string | null = null;
  let discoveryError: AppError | undefined;
  // A frozen S3 server is waited for once in the run, not once (or twice) a database.
  const silence = options.silence ?? commandSilence() ?? new SilentEndpoints();
  try {
    const choice = await chooseServerDatabases(job);
    excluded = choice.excluded;
    warnings = choice.warnings;
    logger.info('server run started', { databases: choice.databases.length, excluded: excluded.join(',') || '-' });
    for (const w of warnings) logger.warn(w);
    for (const f of choice.failures) results.push(failedResult(databaseJob(job, f.database), f.error, now()));
    const ref: ServerRunRef = { id: randomBytes(8).toString('hex'), startedAt: started.toISOString(), job: job.name, globalsIn: null };
    const run = async (database: string, holds: boolean, globals: string | null): Promise<BackupResult> => {
      const unit = databaseJob(job, database, { ...ref, globalsIn: globals }, holds);
      try {
        return await runJob(unit, { ...options, silence, storage: undefined, onProgress: undefined, onBackupDone: undefined });
      } catch (err) {
        return failedResult(unit, toAppError(err), now());
      }
    };
    // The globals first, alone: in the backup of DATABASE_URL's database, else of the first that succeeds.
    const queue = [...choice.order];
    while (job.backup.globals && globalsIn === null && queue.length > 0 && !options.signal?.aborted) {
      const r = await run(queue.shift()!, true, null);
      results.push(r);
      if (r.status !== 'failed' && r.name) globalsIn = r.name;
    }
    await forEachLimit(queue, Math.max(1, options.concurrency), async (database) => {
      results.push(await run(database, false, globalsIn));
    });
  } catch (err) {
    discoveryError = toAppError(err);
    logger.error('server run failed: the databases could not be listed', { error: discoveryError.message });
  }
  results.sort((a, b) => (a.database < b.database ? -1 : a.database > b.database ? 1 : 0));
  let summary = summarize(job, results, started, now(), discoveryError);
  if (warnings.length) summary = { ...summary, warnings: [...warnings, ...summary.warnings] };
  const outcomes = await notifyRun({
    result: summary,
    settings: job.notify,
    context: { host: hostname(), location: destinationOf(job) },
    logger,
  });
  const undelivered = outcomes.filter((o) => !o.ok).map((o) => `${o.channel} notification not delivered: ${o.error ?? 'unknown error'}`);
  if (undelivered.length) summary = { ...summary, warnings: [...summary.warnings, ...undelivered] };
  logger.info('server run finished', {
    status: summary.status,
    databases: results.length,
    failed: results.filter((r) => r.status === 'failed').length,
  });
  return { summary, results, globalsIn, excluded, warnings };
}

/**
 * The run as one result: ok when every database is; partial (exit 3) when some failed and others
 * were backed up; failed when none was (the first failure's exit code). The error names every
 * database that failed.
 */
export function summarize(job: JobConfig, results: readonly BackupResult[], started: Date, finished: Date, error?: AppError): BackupResult {
  const bad = results.filter((r) => r.status === 'failed' || r.status === 'partial');
  const good = results.filter((r) => r.status === 'ok' || r.status === 'partial');
  const failed = results.filter((r) => r.status === 'failed');
  let e: AppError | undefined = error;
  if (!e && bad.length > 0) {
    const names = bad.map((r) => `${r.database} (${r.error?.message ?? r.status})`).join('; ');
    const exitCode = failed.length > 0 && good.length === 0 ? (failed[0]!.error?.exitCode ?? ExitCode.failure) : ExitCode.partial;
    e = new AppError('databases-failed', `${bad.length} of ${results.length} databases not fully backed up: ${names}`, {
      exitCode,
      hint: `${results.length > bad.length ? 'the other databases were backed up' : good.length > 0 ? 'no database was fully backed up' : 'no database was backed up'}; the log has each failure, \`pgbak status\` shows each database`,
    });
  }
  const status: BackupResult['status'] = !e ? 'ok' : error || good.length === 0 ? 'failed' : 'partial';
  return {
    status,
    job: job.name,
    database: `${results.length} databases`,
    name: undefined,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationMs: finished.getTime() - started.getTime(),
    sizeBytes: results.reduce((n, r) => n + (r.sizeBytes ?? 0), 0),
    sha256: undefined,
    encrypted: results.some((r) => r.encrypted),
    locations: [],
    error: e && resultError(e),
    systemIdentifier: results.find((r) => r.systemIdentifier)?.systemIdentifier,
    warnings: results.flatMap((r) => r.warnings.map((w) => `[${r.database}] ${w}`)),
  };
}

function missingError(database: string, onServer: readonly string[]): AppError {
  // The closest name on the server, when it is a likely typo (at most two edits away).
  const near = closestNames(database, onServer, 1).filter((n) => editDistance(database, n) <= 2);
  return new DatabaseError('db-missing', `database "${database}" named in BACKUP_DATABASES is not on the server`, {
    hint: `${near.length ? `did you mean ${near[0]}? ` : ''}check BACKUP_DATABASES; \`psql -l\` lists the server's databases`,
  });
}

function unusableError(database: string): AppError {
  return new DatabaseError(
    'db-unusable',
    `database "${database}" named in BACKUP_DATABASES is a template or refuses connections: such databases are never backed up`,
    { hint: `remove ${database} from BACKUP_DATABASES` },
  );
}

function failedResult(unit: JobConfig, e: AppError, at: Date): BackupResult {
  return {
    status: 'failed',
    job: unit.name,
    database: unit.database,
    name: undefined,
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
    durationMs: 0,
    sizeBytes: undefined,
    sha256: undefined,
    encrypted: false,
    locations: [],
    error: resultError(e),
    warnings: [],
  };
}
