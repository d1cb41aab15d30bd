import type { CatalogEntry } from '../catalog/catalog.js';
import { CatalogSource, requireCopies, type SourceBackends } from '../catalog/find-backup.js';
import type { JobConfig } from '../config/job.js';
import { AppError, ExitCode, NotFoundError, toAppError, UsageError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { redact } from '../logging/redact.js';
import { forEachLimit } from '../model/for-each-limit.js';
import { readGlobals } from '../pipeline/check-stored.js';
import { requireDecryptionKey } from '../pipeline/decrypt.js';
import { withDatabase } from '../postgres/connection.js';
import { applyGlobals, type GlobalsResult } from '../postgres/globals.js';
import { findPgTool, majorOf, siblingTool } from '../postgres/pg-tools.js';
import { openStorage } from '../storage/job-storage.js';
import { restore, type RestoreResult } from './restore.js';
import { databaseJob } from './server-run.js';
import { sourceBackendsOf } from './target-source.js';

/**
 * `restore --all-databases --target-server URL`: a whole server back from the backups of a
 * whole-server job (BACKUP_DATABASES). The plan first — the globals (from the newest server run
 * that stored them) and the newest good backup of each database the job's server runs backed up —
 * then the globals (roles that already exist are left as they are), then each database, created
 * when missing, BACKUP_CONCURRENCY at a time, each with `--parallel` pg_restore jobs.
 */

/** One database of the plan. */
export interface PlannedDatabase {
  readonly database: string;
  readonly backup: string;
  readonly time: string;
  readonly size: number;
}

/** What `restore --all-databases` would do. */
export interface ServerRestorePlan {
  readonly job: string;
  /** The target server, redacted. */
  readonly target: string;
  /** The backup that holds the globals restored first; null: none stored. */
  readonly globals: { readonly backup: string; readonly time: string; readonly size: number } | null;
  readonly databases: readonly PlannedDatabase[];
}

/** The outcome of one database. */
export interface ServerRestoreItem {
  readonly database: string;
  readonly backup: string;
  readonly result?: RestoreResult | undefined;
  readonly error?: AppError | undefined;
}

/** What `restore --all-databases` did. */
export interface ServerRestoreResult {
  readonly plan: ServerRestorePlan;
  readonly globals: GlobalsResult | null;
  readonly items: readonly ServerRestoreItem[];
  readonly durationMs: number;
}

/** The server URL with a database (given one, or `postgres`); a UsageError when it is no postgres URL. */
export function serverUrlOf(target: string): string {
  let u: URL;
  try {
    u = new URL(target.trim());
  } catch {
    throw new UsageError(`--target-server is not a postgresql:// URL: ${redact(target)}`);
  }
  if (!/^postgres(ql)?:$/.test(u.protocol)) throw new UsageError(`--target-server is not a postgresql:// URL: ${redact(target)}`);
  return u.pathname.length > 1 ? u.toString() : withDatabase(u.toString(), 'postgres');
}

/** The good backups of the job's server runs, newest first (local first, else the bucket). */
async function serverEntries(job: JobConfig, backends: SourceBackends): Promise<{ entries: CatalogEntry[]; warnings: readonly string[] }> {
  const source = new CatalogSource(backends);
  const all = await source.list();
  const entries = all.filter((e) => e.state === 'good' && e.manifest?.serverRun?.job === job.name);
  return { entries, warnings: source.warnings };
}

/** `restore --all-databases --dry-run`: the plan alone. Reads the catalog only; changes nothing. */
export async function planServerRestore(options: {
  job: JobConfig;
  targetServer: string;
  from?: string | undefined;
}): Promise<{ plan: ServerRestorePlan; warnings: readonly string[] }> {
  await using storage = openStorage(options.job);
  const backends: SourceBackends = sourceBackendsOf(storage, options.from);
  const { plan, warnings } = await planFrom({ ...options, backends });
  return { plan, warnings };
}

/** The plan: the newest good backup of each database, and the newest globals. Reads the catalog only. */
async function planFrom(options: {
  job: JobConfig;
  targetServer: string;
  backends: SourceBackends;
}): Promise<{ plan: ServerRestorePlan; entries: CatalogEntry[]; warnings: readonly string[] }> {
  const { job } = options;
  const { entries, warnings } = await serverEntries(job, options.backends);
  if (entries.length === 0) {
    throw new NotFoundError(`no good backup of a whole-server run of job ${job.name}`, {
      hint: 'restore --all-databases restores the backups that BACKUP_DATABASES runs made (pgbak list shows what there is)',
    });
  }
  const newest = new Map<string, CatalogEntry>();
  for (const e of entries) if (!newest.has(e.manifest!.database)) newest.set(e.manifest!.database, e);
  const runTime = (e: CatalogEntry) => Date.parse(e.manifest!.serverRun!.startedAt);
  const holder = entries.filter((e) => e.manifest!.globals).sort((a, b) => runTime(b) - runTime(a))[0];
  const plan: ServerRestorePlan = {
    job: job.name,
    target: redact(serverUrlOf(options.targetServer)),
    globals: holder ? { backup: holder.name, time: holder.time.toISOString(), size: holder.manifest!.globals!.size } : null,
    databases: [...newest.values()]
      .map((e) => ({ database: e.manifest!.database, backup: e.name, time: e.time.toISOString(), size: e.size }))
      .sort((a, b) => (a.database < b.database ? -1 : a.database > b.database ? 1 : 0)),
  };
  return { plan, entries, warnings };
}

/** Run a plan: the globals first, then every database (one failing never stops the others). */
export async function restoreServer(options: {
  job: JobConfig;
  targetServer: string;
  /** pg_restore jobs of each database. */
  jobs: number;
  /** Databases restored at once (BACKUP_CONCURRENCY). */
  concurrency: number;
  yes: boolean;
  confirm?: ((question: string) => Promise<boolean>) | undefined;
  from?: string | undefined;
  /** Called with the plan before anything is changed; false cancels. */
  onPlan?: ((plan: ServerRestorePlan) => Promise<boolean> | boolean) | undefined;
  logger?: Logger | undefined;
  signal?: AbortSignal | undefined;
}): Promise<ServerRestoreResult> {
  const { job } = options;
  const logger = options.logger ?? silentLogger;
  const started = Date.now();
  const serverUrl = serverUrlOf(options.targetServer);
  await using storage = openStorage(job, { signal: options.signal });
  const backends: SourceBackends = sourceBackendsOf(storage, options.from);
  const { plan, entries } = await planFrom({ job, targetServer: serverUrl, backends });
  if (options.onPlan && !(await options.onPlan(plan))) {
    throw new AppError('cancelled', 'restore cancelled; the target server was not changed', { exitCode: ExitCode.usage });
  }
  let globals: GlobalsResult | null = null;
  if (plan.globals) {
    const entry = entries.find((e) => e.name === plan.globals!.backup)!;
    await requireDecryptionKey(entry.manifest!, job.age.identityFile);
    const pgRestore = await findPgTool('pg_restore', majorOf(entry.manifest!.pgDump.version), job.pgTools.pgDumpPath);
    const psql = await siblingTool(pgRestore, 'psql');
    const sql = await readGlobals(requireCopies(entry, backends).copies, options.signal, job.age.identityFile);
    globals = await applyGlobals({ psql, targetUrl: serverUrl, sql, signal: options.signal });
    logger.info('globals applied', { from: entry.name, created: globals.created.join(',') || '-', existing: globals.existing.length });
    for (const e of globals.errors) logger.warn(`globals: ${e}`);
  }
  const items: ServerRestoreItem[] = [];
  await forEachLimit(plan.databases, Math.max(1, options.concurrency), async (d) => {
    if (options.signal?.aborted) {
      items.push({ database: d.database, backup: d.backup, error: new AppError('interrupted', 'not restored: interrupted') });
      return;
    }
    try {
      const result = await restore({
        job: databaseJob(job, d.database),
        name: d.backup,
        target: withDatabase(serverUrl, d.database),
        from: options.from,
        jobs: options.jobs,
        create: true,
        yes: options.yes,
        confirm: options.confirm,
        logger,
        signal: options.signal,
        storage,
      });
      items.push({ database: d.database, backup: d.backup, result });
    } catch (err) {
      items.push({ database: d.database, backup: d.backup, error: toAppError(err) });
    }
  });
  items.sort((a, b) => (a.database < b.database ? -1 : a.database > b.database ? 1 : 0));
  return { plan, globals, items, durationMs: Date.now() - started };
}
