import type { Manifest } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { IntegrityError, ProcessError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { toAppError } from '../errors/index.js';
import { connect, withDatabase } from '../postgres/connection.js';
import { findPgTool, majorOf } from '../postgres/pg-tools.js';
import { createDatabase, dropDatabase } from '../postgres/target-database.js';
import type { Toc } from '../postgres/toc.js';
import type { SourceCopy } from '../catalog/find-backup.js';
import { requireDecryptionKey } from '../pipeline/decrypt.js';
import { randomSuffix, runRestore } from './restore-run.js';
import { ident } from '../postgres/sql.js';

/** One check of a verification, as stored in the verification record. */
export interface Check {
  readonly check: string;
  readonly ok: boolean;
  readonly detail?: string;
}

export interface RestoreTestResult {
  readonly ok: boolean;
  readonly scratchDatabase: string;
  readonly durationMs: number;
  readonly checks: readonly Check[];
}

/** `pgbak_verify_<name>_<random>`, cut to PostgreSQL's 63-byte identifier limit. */
export function scratchName(backup: string): string {
  const suffix = `_${randomSuffix()}`;
  const room = 63 - 'pgbak_verify_'.length - suffix.length;
  return `pgbak_verify_${backup.replace(/[^A-Za-z0-9_]/g, '_').slice(0, room)}${suffix}`.toLowerCase();
}

function sameServer(a: string, b: string): boolean {
  const x = new URL(a);
  const y = new URL(b);
  return x.hostname === y.hostname && (x.port || '5432') === (y.port || '5432');
}

/** Every table of the archive's table of contents exists in the restored database. */
async function checkTables(url: string, toc: Toc | undefined): Promise<Check> {
  if (!toc) return { check: 'tables', ok: false, detail: "the archive's table of contents could not be read" };
  const client = await connect(url);
  try {
    const { rows } = await client.query<{ t: string }>(
      `SELECT format('%s %s', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')`,
    );
    const present = new Set(rows.map((r) => r.t));
    const missing = toc.tables.filter((t) => !present.has(t));
    return missing.length
      ? {
          check: 'tables',
          ok: false,
          detail: `${missing.length} of ${toc.tables.length} tables missing: ${missing.slice(0, 10).join(', ')}`,
        }
      : { check: 'tables', ok: true, detail: `all ${toc.tables.length} tables of the archive exist` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Exact row counts equal those recorded at backup time (same snapshot as the dump). */
async function checkRowCounts(url: string, manifest: Manifest): Promise<Check> {
  if (!manifest.tables) return { check: 'row counts', ok: true, detail: 'not recorded at backup time (BACKUP_ROW_COUNTS=false): skipped' };
  const client = await connect(url);
  const wrong: string[] = [];
  let rows = 0;
  try {
    for (const t of manifest.tables) {
      const name = `${ident(t.schema)}.${ident(t.table)}`;
      try {
        const r = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ONLY ${name}`);
        const n = Number(r.rows[0]!.n);
        rows += n;
        if (n !== t.rows) wrong.push(`${t.schema}.${t.table}: ${n} rows, ${t.rows} at backup time`);
      } catch (err) {
        wrong.push(`${t.schema}.${t.table}: ${(err as Error).message}`);
      }
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  return wrong.length
    ? {
        check: 'row counts',
        ok: false,
        detail: `${wrong.length} of ${manifest.tables.length} tables differ: ${wrong.slice(0, 10).join('; ')}`,
      }
    : { check: 'row counts', ok: true, detail: `${manifest.tables.length} tables, ${rows} rows, all equal to the backup's` };
}

/**
 * Restore a copy into a scratch database (created here, always dropped) on the job's server or
 * VERIFY_DATABASE_URL, then check: pg_restore succeeded, every table in the archive's table of
 * contents exists, row counts equal the manifest's. On another server the roles of the backup
 * usually do not exist, so there the test restores with --no-owner --no-privileges.
 * A failing check is a result (ok: false); an environment problem (server unreachable, no
 * pg_restore, no secret key) is thrown, because it says nothing about the backup.
 */
export async function restoreTest(options: {
  job: JobConfig;
  manifest: Manifest;
  copy: SourceCopy;
  preVerified: boolean;
  logger: Logger;
  signal?: AbortSignal | undefined;
}): Promise<RestoreTestResult> {
  const { job, manifest, logger } = options;
  const server = job.verify.databaseUrl ?? job.databaseUrl;
  const scratch = scratchName(manifest.name);
  const url = withDatabase(server, scratch);
  const other = !sameServer(server, job.databaseUrl);
  const t0 = Date.now();
  const checks: Check[] = [];
  const pgRestore = await findPgTool('pg_restore', majorOf(manifest.pgDump.version), job.pgTools.pgDumpPath);
  await requireDecryptionKey(manifest, job.age.identityFile);
  logger.info('restore test started', { backup: manifest.name, scratch });
  await createDatabase(url, scratch);
  try {
    let toc: Toc | undefined;
    try {
      const run = await runRestore({
        manifest,
        copy: options.copy,
        targetUrl: url,
        jobs: 1,
        pgRestore,
        preVerified: options.preVerified,
        spoolDir: job.backupDir,
        ageIdentityFile: job.age.identityFile,
        extraArgs: other ? ['--no-owner', '--no-privileges'] : [],
        logger,
        signal: options.signal,
      });
      toc = run.toc;
      checks.push({ check: 'pg_restore', ok: true, detail: `${run.objects} objects restored in ${(run.restoreMs / 1000).toFixed(1)} s` });
    } catch (err) {
      const e = toAppError(err);
      if (!(e instanceof ProcessError || e instanceof IntegrityError || e.code === 'gpg-failed' || e.code === 'age-failed')) throw e;
      checks.push({ check: 'pg_restore', ok: false, detail: e.message });
    }
    if (checks[0]!.ok) {
      checks.push(await checkTables(url, toc));
      checks.push(await checkRowCounts(url, manifest));
    }
  } finally {
    await dropDatabase(url, scratch).catch((err: unknown) =>
      logger.warn('could not drop the scratch database of the restore test', { database: scratch, error: toAppError(err).message }),
    );
  }
  const ok = checks.every((c) => c.ok);
  const durationMs = Date.now() - t0;
  logRestoreTest(logger, 'restore test', manifest.name, checks, durationMs);
  return { ok, scratchDatabase: scratch, durationMs, checks };
}

/** The one log line of a finished restore test (a dump's or a base backup's): passed, or FAILED with the failed checks. */
export function logRestoreTest(logger: Logger, what: string, backup: string, checks: readonly Check[], durationMs: number): void {
  const ok = checks.every((c) => c.ok);
  const failed = checks
    .filter((c) => !c.ok)
    .map((c) => `${c.check}: ${c.detail}`)
    .join('; ');
  logger[ok ? 'info' : 'error'](`${what} ${ok ? 'passed' : 'FAILED'}`, {
    backup,
    seconds: (durationMs / 1000).toFixed(1),
    ...(ok ? {} : { failed }),
  });
}
