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

  const run = async (check: string, fn: () => Promise<string>): Promise<boolean> => {
    if (error && options.stopOnFailure) return false;
    try {
      checks.push({ check, ok: true, detail: await fn() });
      return true;
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('internal', String(err), { cause: err });
      checks.push({ check, ok: false, detail: e.message, error: e });
      error ??= e;
      return false;
    }
  };

  await run('database', async () => {
    const client = await connect(job.databaseUrl);
    try {
      out.server = await serverInfo(client);
      out.tables = await dumpedTables(client);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (options.keepClient) out.client = client;
    else await client.end();
    return `PostgreSQL ${out.server.version}, database ${job.database} (${out.server.databaseSize} bytes, ${out.tables.length} tables)`;
  });
  await run('pg_dump', async () => {
    out.pgDump = await findPgTool('pg_dump', out.server?.major ?? 0, job.pgTools.pgDumpPath);
    return `${out.pgDump.path} (${out.pgDump.version})`;
  });
  if (options.encrypt && job.gpgRecipient) {
    await run('gpg key', async () => {
      out.gpgKey = await resolveRecipient(job.gpgRecipient!);
      return `${out.gpgKey.uid || out.gpgKey.recipient} (${out.gpgKey.fingerprint})`;
    });
  }
  if (options.encrypt && job.age.recipients) {
    const setting = job.age.recipients;
    await run('age recipients', async () => {
      out.age = await resolveAgeRecipients(setting);
      return `${out.age.recipients.length} recipient(s) from ${out.age.source}: ${out.age.recipients.map(shortKey).join(', ')}`;
    });
  }
  await run('backup directory', async () => checkWritableDir(job.backupDir, 'backup directory', 'BACKUP_DIR'));
  if (job.logFile) await run('log file', async () => checkWritableDir(dirname(job.logFile!), 'log directory', 'LOG_FILE'));
  let bucketError: AppError | undefined;
  if (options.upload && job.s3 && !(error && options.stopOnFailure)) {
    // HeadBucket answers within STORAGE_TIMEOUT or fails with storage-timeout (a black-holed endpoint).
    await using own = options.storage ? undefined : openStorage(job, { signal: options.signal });
    const bucket = (options.storage ?? own)!.remote!;
    try {
      await bucket.checkAccess();
      const lock = job.s3.objectLock ? ` (Object Lock: ${job.s3.objectLock})` : '';
      checks.push({
        check: 'bucket',
        ok: true,
        detail: `s3://${job.s3.bucket}/${job.s3.prefix} at ${job.s3.endpoint} is reachable${lock}`,
      });
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('internal', String(err), { cause: err });
      checks.push({ check: 'bucket', ok: false, detail: e.message, error: e });
      // A bucket without the Object Lock that STORAGE_OBJECT_LOCK asks for is a setup error: no
      // backup at all rather than an unlocked one (an unreachable bucket costs only the upload).
      if (options.optionalBucket && e.code !== 'storage-object-lock') bucketError = e;
      else error ??= e;
    }
  }
  // A further target with Object Lock asked (STORAGE_2_OBJECT_LOCK, a target's object_lock) is
  // checked too: a bucket without it is a setup error, as for the first bucket. One that cannot be
  // reached only costs its copy (the run is partial, naming it), so it is a failed check, no error.
  if (options.upload && job.s3 && !(error && options.stopOnFailure)) {
    await using own = options.storage ? undefined : openStorage(job, { signal: options.signal });
    for (const t of (options.storage ?? own)!.extra ?? []) {
      if (!t.objectLock) continue;
      try {
        await t.backend.checkAccess();
        checks.push({ check: `target ${t.name}`, ok: true, detail: `${t.backend.location} is reachable (Object Lock: ${t.objectLock})` });
      } catch (err) {
        const e = err instanceof AppError ? err : new AppError('internal', String(err), { cause: err });
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
        checks.push({ check: `target ${t.name}`, ok: false, detail: named.message, error: named });
        if (lock) error ??= named;
      }
    }
  }
  if (error && out.client) {
    await out.client.end().catch(() => undefined);
    delete out.client;
  }
  return { checks, ...out, ...(error ? { error } : {}), ...(bucketError ? { bucketError } : {}) };
}
