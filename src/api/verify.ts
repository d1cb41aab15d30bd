import { Readable } from 'node:stream';
import { verificationKey } from '../catalog/backup-name.js';
import { listBackups, type CatalogEntry } from '../catalog/catalog.js';
import type { VerificationRecord } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { ExitCode, IntegrityError, NotFoundError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { toAppError } from '../pipeline/stream-to-storage.js';
import { createStorage } from '../storage/index.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import type { BackupResult } from './backup-result.js';
import { artifactCopies, checkStored, findByName, findLatest, type SourceBackends } from './backup-source.js';
import { restoreTest, type Check, type RestoreTestResult } from './restore-test.js';

export interface VerifyOptions {
  readonly job: JobConfig;
  /** One backup by name; else `all`; else the newest backup (with a manifest) of the job's database. */
  readonly name?: string | undefined;
  readonly latest?: boolean | undefined;
  readonly all?: boolean | undefined;
  /** Also restore into a scratch database and check tables and row counts. */
  readonly restoreTest?: boolean | undefined;
  readonly logger?: Logger | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** What verify found about one backup. */
export interface BackupVerification {
  readonly name: string;
  readonly database: string | undefined;
  readonly ok: boolean;
  readonly kind: VerificationRecord['kind'];
  /** 0, IntegrityError's 9 (a copy differs from its manifest), 14 (restore test failed), or the error's. */
  readonly exitCode: number;
  readonly durationMs: number;
  readonly checks: readonly Check[];
  readonly restoreTest: RestoreTestResult | undefined;
  /** Where the verification record was written. */
  readonly recordedIn: readonly string[];
  /** Set when the verification could not run (storage or server unreachable, key missing): nothing recorded. */
  readonly error: { readonly code: string; readonly message: string; readonly hint?: string | undefined } | undefined;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly exitCode: number;
  readonly results: readonly BackupVerification[];
}

/** The exit code of several results: a checksum problem first, then a failed restore test, then any error. */
export function combinedExitCode(codes: readonly number[]): number {
  if (codes.includes(ExitCode.integrity)) return ExitCode.integrity;
  if (codes.includes(ExitCode.verifyFailed)) return ExitCode.verifyFailed;
  return codes.find((c) => c !== ExitCode.ok) ?? ExitCode.ok;
}

async function checkCopies(entry: CatalogEntry, backends: SourceBackends, signal: AbortSignal | undefined): Promise<Check[]> {
  const m = entry.manifest;
  if (!m) return [{ check: 'manifest', ok: false, detail: entry.problems.join('; ') || 'no readable manifest' }];
  const checks: Check[] = [];
  for (const where of ['local', 'remote'] as const) {
    const loc = entry.locations[where];
    const backend = backends[where];
    if (!loc || !backend) continue;
    if (!loc.manifest) checks.push({ check: `${where} manifest`, ok: false, detail: `no ${entry.name}.manifest.json in ${backend.location}` });
    const files = [{ what: 'artifact', file: m.artifact, present: loc.artifact }, ...(m.globals ? [{ what: 'globals', file: m.globals, present: loc.globals }] : [])];
    for (const f of files) {
      const check = `${where} ${f.what}`;
      if (!f.present) {
        checks.push({ check, ok: false, detail: `${backend.urlOf(f.file.key)} is missing` });
        continue;
      }
      try {
        await checkStored(backend, f.file, { signal });
        checks.push({ check, ok: true, detail: `${backend.urlOf(f.file.key)}: ${f.file.size} bytes, sha256 matches` });
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        checks.push({ check, ok: false, detail: err.message });
      }
    }
  }
  return checks;
}

async function writeRecord(backend: StorageBackend, record: VerificationRecord, signal: AbortSignal | undefined): Promise<void> {
  const body = Buffer.from(JSON.stringify(record, null, 2) + '\n');
  await backend.put(verificationKey(record.name), Readable.from([body]), { contentLength: body.length, contentType: 'application/json', signal });
}

async function verifyEntry(entry: CatalogEntry, backends: SourceBackends, options: VerifyOptions, logger: Logger): Promise<BackupVerification> {
  const t0 = Date.now();
  const base = { name: entry.name, database: entry.database };
  let checks: Check[] = [];
  let rt: RestoreTestResult | undefined;
  try {
    checks = await checkCopies(entry, backends, options.signal);
    const checksumOk = checks.every((c) => c.ok);
    if (options.restoreTest && checksumOk && entry.manifest) {
      const copy = artifactCopies(entry, entry.manifest, backends).copies[0];
      if (!copy) throw new NotFoundError(`backup ${entry.name} has no copy to restore`);
      rt = await restoreTest({ job: options.job, manifest: entry.manifest, copy, preVerified: true, logger, signal: options.signal });
    }
  } catch (err) {
    const e = toAppError(err);
    logger.error('verification could not run', { backup: entry.name, error: e.message });
    return { ...base, ok: false, kind: options.restoreTest ? 'restore-test' : 'checksum', exitCode: e.exitCode, durationMs: Date.now() - t0, checks, restoreTest: rt, recordedIn: [], error: { code: e.code, message: e.message, hint: e.hint } };
  }
  const checksumOk = checks.every((c) => c.ok);
  const ok = checksumOk && (rt?.ok ?? true);
  const kind = rt ? 'restore-test' : 'checksum';
  const durationMs = Date.now() - t0;
  const all = [...checks, ...(rt?.checks ?? [])];
  const record: VerificationRecord = { format: 'pgbak-verification', version: 1, name: entry.name, verifiedAt: new Date().toISOString(), ok, kind, durationMs, checks: all };
  // A passing checksum check does not replace the record of a passing restore test, which proves more.
  const keep = ok && kind === 'checksum' && entry.verification?.ok === true && entry.verification.kind === 'restore-test';
  const recordedIn: string[] = [];
  for (const where of ['local', 'remote'] as const) {
    const backend = backends[where];
    if (keep || !backend || !entry.locations[where]) continue;
    try {
      await writeRecord(backend, record, options.signal);
      recordedIn.push(backend.urlOf(verificationKey(entry.name)));
    } catch (err) {
      logger.warn('could not write the verification record', { location: backend.location, error: toAppError(err).message });
    }
  }
  const exitCode = !checksumOk ? ExitCode.integrity : rt && !rt.ok ? ExitCode.verifyFailed : ExitCode.ok;
  logger[ok ? 'info' : 'error'](`verification ${ok ? 'passed' : 'FAILED'}`, {
    backup: entry.name,
    kind,
    seconds: (durationMs / 1000).toFixed(1),
    ...(ok ? {} : { failed: all.filter((c) => !c.ok).map((c) => `${c.check}: ${c.detail}`).join('; ') }),
  });
  return { ...base, ok, kind, exitCode, durationMs, checks: all, restoreTest: rt, recordedIn, error: undefined };
}

/**
 * Check backups against their manifests — every copy, local and remote (the remote one
 * streamed, never stored) — and with `restoreTest` restore one into a scratch database and
 * check it. Writes a verification record next to each backup so `pgbak list` shows it.
 * Throws only when the backups cannot be found (NotFoundError); per-backup results otherwise.
 */
export async function verify(options: VerifyOptions): Promise<VerifyReport> {
  const { job } = options;
  const logger = (options.logger ?? silentLogger).child({ database: job.database });
  const storage = createStorage(job, { signal: options.signal });
  const backends: SourceBackends = { local: storage.local, remote: storage.remote };
  try {
    let entries: CatalogEntry[];
    if (options.name) entries = [await findByName(backends, options.name)];
    else if (options.all) {
      entries = await listBackups({ ...backends, prefix: job.filePrefix });
      if (entries.length === 0) throw new NotFoundError(`no backups of ${job.database} in ${storage.local.location}${storage.remote ? ` or ${storage.remote.location}` : ''}`);
    } else entries = [await findLatest(backends, job.filePrefix, { anyState: true })];
    const results: BackupVerification[] = [];
    for (const entry of entries) {
      if (options.signal?.aborted) break;
      results.push(await verifyEntry(entry, backends, options, logger));
    }
    const exitCode = combinedExitCode(results.map((r) => r.exitCode));
    return { ok: exitCode === ExitCode.ok && results.length === entries.length, exitCode, results };
  } finally {
    storage.remote?.destroy();
  }
}

/**
 * BACKUP_VERIFY=restore-test: after a successful backup, verify it with a restore test. A copy
 * that differs from its manifest (exit 9) or a failed restore test (exit 14) turns the run into
 * a failure with that exit code: a backup that does not restore is no backup. When the test
 * cannot run at all (verification server down, no pg_restore) the backup stays ok with a warning.
 */
export async function restoreTestAfterBackup(options: { job: JobConfig; result: BackupResult; logger: Logger; signal?: AbortSignal | undefined }): Promise<BackupResult> {
  const { job, result, logger } = options;
  if (result.status !== 'ok' || job.settings.BACKUP_VERIFY !== 'restore-test' || !result.name || options.signal?.aborted) return result;
  let report: VerifyReport;
  try {
    report = await verify({ job, name: result.name, restoreTest: true, logger, signal: options.signal });
  } catch (err) {
    const e = toAppError(err);
    return { ...result, warnings: [...result.warnings, `restore test could not run: ${e.message}`] };
  }
  const r = report.results[0];
  if (report.ok || !r) return result;
  if (r.error) return { ...result, warnings: [...result.warnings, `restore test could not run: ${r.error.message}`] };
  const failed = r.checks.filter((c) => !c.ok).map((c) => `${c.check}: ${c.detail}`);
  return {
    ...result,
    status: 'failed',
    error: {
      code: r.exitCode === ExitCode.integrity ? 'integrity' : 'verify-failed',
      message: `restore test of ${result.name} failed: ${failed.join('; ')}`,
      hint: 'the backup is kept and marked corrupt; run `pgbak verify --restore-test` to see every check',
      exitCode: r.exitCode,
    },
  };
}
