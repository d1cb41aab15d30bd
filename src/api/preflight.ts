import { dirname } from 'node:path';
import type pg from 'pg';
import type { JobConfig } from '../config/job.js';
import { AppError } from '../errors/index.js';
import { connect, serverInfo, type ServerInfo } from '../postgres/connection.js';
import { dumpedTables } from '../postgres/pg-dump.js';
import { findPgTool, type PgTool } from '../postgres/pg-tools.js';
import { resolveAgeRecipients, shortKey, type AgeRecipients } from '../pipeline/age.js';
import { resolveRecipient, type GpgKey } from '../pipeline/gpg.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import { checkWritableDir } from '../storage/writable-dir.js';

export interface CheckResult {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly error?: AppError;
}

export interface PreflightResult {
  readonly checks: CheckResult[];
  readonly server?: ServerInfo;
  readonly pgDump?: PgTool;
  readonly gpgKey?: GpgKey;
  /** AGE_RECIPIENTS, read and checked with the installed age. */
  readonly age?: AgeRecipients;
  readonly tables?: { schema: string; table: string; bytes: number }[];
  /** Open connection, left open for the snapshot when `keepClient` was asked. */
  readonly client?: pg.Client;
  /** The first failed check's error (a bucket failure only when the bucket is required). */
  readonly error?: AppError;
  /** The bucket check's failure, when the bucket is optional (a real run goes on locally). */
  readonly bucketError?: AppError;
}

export interface PreflightOptions {
  readonly job: JobConfig;
  readonly encrypt: boolean;
  readonly upload: boolean;
  /** Stop at the first failure (a real run) or go on and report every check (--dry-run). */
  readonly stopOnFailure: boolean;
  /** Keep the database connection open and return it (a real run reuses it). */
  readonly keepClient: boolean;
  /** A failed bucket check is reported in `bucketError` instead of failing the preflight. */
  readonly optionalBucket?: boolean;
  /** Stops the bucket check (which STORAGE_TIMEOUT bounds anyway). */
  readonly signal?: AbortSignal | undefined;
  /** The run's storage, whose remote the bucket check uses; opened (and released) here when absent. */
  readonly storage?: JobStorage | undefined;
}

/**
 * Everything a backup needs, checked before any byte is written: the database (and its
 * version), a pg_dump at least as new as the server, the GPG key, the local directory and
 * the bucket. The same checks serve `--dry-run` (report all) and a real run (stop at first).
 */
export async function preflight(options: PreflightOptions): Promise<PreflightResult> {
  const { job } = options;
  const checks: CheckResult[] = [];
  let error: AppError | undefined;
  const out: {
    server?: ServerInfo;
    pgDump?: PgTool;
    gpgKey?: GpgKey;
    age?: AgeRecipients;
    tables?: { schema: string; table: string; bytes: number }[];
    client?: pg.Client;
  } = {};

  // The checks run at once (only pg_dump's choice waits for the server's version; its `--version`
  // runs beside the connection). Their results are reported in this fixed order, and a real run
  // (stopOnFailure) fails with the first failure in that order, as when they ran one after the
  // other (docs/performance.md, "Stream path").
  let serverMajor: (major: number) => void = () => undefined;
  const major = new Promise<number>((resolve) => (serverMajor = resolve));
  const database = settle('database', async () => {
    const client = await connect(job.databaseUrl);
    try {
      out.server = await serverInfo(client);
      serverMajor(out.server.major);
      out.tables = await dumpedTables(client);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (options.keepClient) out.client = client;
    else await client.end();
    return `PostgreSQL ${out.server.version}, database ${job.database} (${out.server.databaseSize} bytes, ${out.tables.length} tables)`;
  }).finally(() => serverMajor(0));
  const finding = findPgTool('pg_dump', major, job.pgTools.pgDumpPath);
  finding.catch(() => undefined);
  const pgDump = database.then((db) =>
    // A real run stops at the database's failure; --dry-run still looks for a pg_dump.
    db.ok || !options.stopOnFailure
      ? settle('pg_dump', async () => {
          out.pgDump = await finding;
          return `${out.pgDump.path} (${out.pgDump.version})`;
        })
      : undefined,
  );
  const local: Promise<CheckResult | undefined>[] = [database, pgDump];
  if (options.encrypt && job.gpgRecipient) {
    const recipient = job.gpgRecipient;
    local.push(
      settle('gpg key', async () => {
        out.gpgKey = await resolveRecipient(recipient);
        return `${out.gpgKey.uid || out.gpgKey.recipient} (${out.gpgKey.fingerprint})`;
      }),
    );
  }
  if (options.encrypt && job.age.recipients) {
    const setting = job.age.recipients;
    local.push(
      settle('age recipients', async () => {
        out.age = await resolveAgeRecipients(setting);
        return `${out.age.recipients.length} recipient(s) from ${out.age.source}: ${out.age.recipients.map(shortKey).join(', ')}`;
      }),
    );
  }
  local.push(settle('backup directory', async () => checkWritableDir(job.backupDir, 'backup directory', 'BACKUP_DIR')));
  if (job.logFile) {
    const logDir = dirname(job.logFile);
    local.push(settle('log file', async () => checkWritableDir(logDir, 'log directory', 'LOG_FILE')));
  }
  // The buckets are checked beside the rest; a real run that failed already does not wait for them.
  const buckets = options.upload && job.s3 ? bucketChecks(options) : undefined;
  buckets?.catch(() => undefined);
  for (const r of await Promise.all(local)) {
    if (!r || (error && options.stopOnFailure)) continue;
    checks.push(r);
    error ??= r.error;
  }
  let bucketError: AppError | undefined;
  if (buckets && !(error && options.stopOnFailure)) {
    const b = await buckets;
    checks.push(...b.checks);
    bucketError = b.bucketError;
    error ??= b.error;
  }
  if (error && out.client) {
    await out.client.end().catch(() => undefined);
    delete out.client;
  }
  return { checks, ...out, ...(error ? { error } : {}), ...(bucketError ? { bucketError } : {}) };
}

/** Run one check: its result, a failure included (never a rejection). */
async function settle(check: string, fn: () => Promise<string>): Promise<CheckResult> {
  try {
    return { check, ok: true, detail: await fn() };
  } catch (err) {
    const e = asAppError(err);
    return { check, ok: false, detail: e.message, error: e };
  }
}

const asAppError = (err: unknown): AppError => (err instanceof AppError ? err : new AppError('internal', String(err), { cause: err }));

/**
 * The bucket, and every further target with Object Lock asked (STORAGE_2_OBJECT_LOCK, a target's
 * object_lock), all at once. HeadBucket answers within STORAGE_TIMEOUT or fails with
 * storage-timeout (a black-holed endpoint).
 */
async function bucketChecks(options: PreflightOptions): Promise<{ checks: CheckResult[]; error?: AppError; bucketError?: AppError }> {
  const s3 = options.job.s3!;
  await using own = options.storage ? undefined : openStorage(options.job, { signal: options.signal });
  const storage = (options.storage ?? own)!;
  const first = settle('bucket', async () => {
    await storage.remote!.checkAccess();
    const lock = s3.objectLock ? ` (Object Lock: ${s3.objectLock})` : '';
    return `s3://${s3.bucket}/${s3.prefix} at ${s3.endpoint} is reachable${lock}`;
  });
  // A further target without the Object Lock asked is a setup error, as for the first bucket. One
  // that cannot be reached only costs its copy (the run is partial, naming it): a failed check, no error.
  const further = (storage.extra ?? [])
    .filter((t) => t.objectLock)
    .map(async (t): Promise<CheckResult> => {
      try {
        await t.backend.checkAccess();
        return { check: `target ${t.name}`, ok: true, detail: `${t.backend.location} is reachable (Object Lock: ${t.objectLock})` };
      } catch (err) {
        const e = asAppError(err);
        const lock = e.code === 'storage-object-lock';
        const named = new AppError(
          e.code,
          `target ${t.name}: ${e.message.replace(/\bSTORAGE_OBJECT_LOCK=(\w+)/, 'Object Lock $1 is asked')}`,
          {
            exitCode: e.exitCode,
            hint: lock
              ? 'create that bucket with Object Lock enabled (most servers enable it only at creation: aws s3api create-bucket --object-lock-enabled-for-bucket), or set STORAGE_2_OBJECT_LOCK=off (object_lock: off in pgbak.yaml)'
              : e.hint,
            cause: e,
          },
        );
        return { check: `target ${t.name}`, ok: false, detail: named.message, error: named };
      }
    });
  const bucket = await first;
  const out: { checks: CheckResult[]; error?: AppError; bucketError?: AppError } = { checks: [bucket] };
  // A bucket without the Object Lock that STORAGE_OBJECT_LOCK asks for is a setup error: no
  // backup at all rather than an unlocked one (an unreachable bucket costs only the upload).
  if (bucket.error) {
    if (options.optionalBucket && bucket.error.code !== 'storage-object-lock') out.bucketError = bucket.error;
    else out.error = bucket.error;
  }
  // A real run that fails at the first bucket does not wait for the others.
  if (out.error && options.stopOnFailure) return out;
  for (const r of await Promise.all(further)) {
    out.checks.push(r);
    if (r.error?.code === 'storage-object-lock') out.error ??= r.error;
  }
  return out;
}
