import { Readable } from 'node:stream';
import { parseKey, verificationKey } from '../catalog/backup-name.js';
import { listBackups, ownBackups, type CatalogEntry, type LocationName } from '../catalog/catalog.js';
import type { VerificationRecord } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { ExitCode, IntegrityError, messageOf, NotFoundError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { toAppError } from '../errors/index.js';
import { openStorage, type JobStorage, type NamedBackend } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import type { BackupResult } from '../model/backup-result.js';
import {
  CatalogSource,
  findByName,
  findLatest,
  futureWarning,
  isFromTheFuture,
  newestPerServer,
  type SourceBackends,
  type SourceCopy,
} from '../catalog/find-backup.js';
import { checkStored } from '../pipeline/check-stored.js';
import { jobIdentity } from './identity.js';
import { restoreTest, type Check, type RestoreTestResult } from './restore-test.js';
import type { BackupVerification } from './verify-result.js';

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
  /** The job's open storage; opened (and released) here when absent. */
  readonly storage?: JobStorage | undefined;
  /**
   * With `restoreTest` and no `name`: how restore_command starts pgbak (`[node, bin/pgbak]`), to
   * restore-test the newest base backup too when the job has a WAL archive (verify-base.ts).
   */
  readonly pgbakCommand?: readonly string[] | undefined;
}

export type { BackupVerification } from './verify-result.js';

export interface VerifyReport {
  readonly ok: boolean;
  readonly exitCode: number;
  readonly results: readonly BackupVerification[];
  /** The bucket could not be read (BACKUP_DIR alone was used); newer backups passed over; backups dated ahead of the clock. */
  readonly warnings: readonly string[];
}

/** The exit code of several results: a checksum problem first, then a failed restore test, then any error. */
export function combinedExitCode(codes: readonly number[]): number {
  if (codes.includes(ExitCode.integrity)) return ExitCode.integrity;
  if (codes.includes(ExitCode.verifyFailed)) return ExitCode.verifyFailed;
  return codes.find((c) => c !== ExitCode.ok) ?? ExitCode.ok;
}

/** What checking one location's copy found. */
interface CopyResult {
  readonly where: LocationName;
  readonly backend: StorageBackend;
  /** The copy's own checks (artifact and globals against its own manifest; a broken manifest). */
  readonly checks: Check[];
  /** A verification record belongs here: the copy has a manifest (even a broken one). */
  readonly recordable: boolean;
  /** The copy, ready to restore from, when every check passed. */
  readonly usable: SourceCopy | undefined;
  /** The verification record already beside this copy. */
  readonly previous: VerificationRecord | undefined;
}

/**
 * Check one location's copy against ITS OWN manifest: a wrong manifest blames this copy, never
 * the intact artifact elsewhere. A copy that was never complete (no manifest and no artifact: a
 * stray globals file or run record of a failed upload) is not checked: undefined, and the
 * caller reports it as a problem of that copy.
 */
async function checkCopy(
  entry: CatalogEntry,
  where: LocationName,
  backend: StorageBackend,
  signal: AbortSignal | undefined,
  label: string = where,
): Promise<CopyResult | undefined> {
  const copy = entry.locations[where]!;
  const previous = copy.verificationData;
  const checks: Check[] = [];
  const m = copy.manifestData;
  if (!copy.manifest) {
    if (!copy.artifact) return undefined;
    checks.push({
      check: `${label} manifest`,
      ok: false,
      detail: `no ${entry.name}.manifest.json in ${backend.location} beside ${backend.urlOf(copy.artifact.key)}: it cannot be checked`,
    });
    return { where, backend, checks, recordable: false, usable: undefined, previous };
  }
  if (!m) {
    const problem = copy.problems.find((p) => p.includes('manifest')) ?? copy.problems[0] ?? 'unreadable';
    checks.push({ check: `${label} manifest`, ok: false, detail: `${backend.urlOf(copy.manifest.key)}: ${problem}` });
    return { where, backend, checks, recordable: true, usable: undefined, previous };
  }
  if (m.name !== entry.name)
    checks.push({
      check: `${label} manifest`,
      ok: false,
      detail: `${backend.urlOf(copy.manifest.key)} names ${m.name}, not ${entry.name}`,
    });
  const files = [
    { what: 'artifact', file: m.artifact, present: copy.artifact },
    ...(m.globals ? [{ what: 'globals', file: m.globals, present: copy.globals }] : []),
    // BACKUP_JOBS ≥ 2: every other file of the directory-format dump.
    ...(m.directory?.files ?? [])
      .filter((f) => f.key !== m.artifact.key)
      .map((f) => ({
        what: `file ${f.key.slice(f.key.lastIndexOf('/') + 1)}`,
        file: f,
        present: copy.others.find((o) => o.key === f.key),
      })),
  ];
  for (const f of files) {
    const check = `${label} ${f.what}`;
    if (!f.present) {
      checks.push({ check, ok: false, detail: `${backend.urlOf(f.file.key)} is missing (named by ${backend.urlOf(copy.manifest.key)})` });
      continue;
    }
    try {
      await checkStored(backend, f.file, { signal });
      checks.push({ check, ok: true, detail: `${backend.urlOf(f.file.key)}: ${f.file.size} bytes, sha256 matches its manifest` });
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      checks.push({ check, ok: false, detail: `${err.message} (${backend.urlOf(copy.manifest.key)})` });
    }
  }
  const ok = checks.every((c) => c.ok);
  const usable = ok && copy.artifact ? { where, backend, key: copy.artifact.key, size: copy.artifact.size, manifest: m } : undefined;
  return { where, backend, checks, recordable: true, usable, previous };
}

/**
 * A further bucket target's copy of the backup (pgbak.yaml's targets, STORAGE_2_*), checked
 * against the manifest beside it; its checks are named after the target (`target offsite artifact`).
 * A target that lacks the backup or cannot be read is a problem, not a failed check.
 */
async function checkTargetCopy(
  entry: CatalogEntry,
  target: NamedBackend,
  signal: AbortSignal | undefined,
  copies: CopyResult[],
  problems: string[],
): Promise<void> {
  let there: CatalogEntry | undefined;
  try {
    const prefix = parseKey(`${entry.name}.manifest.json`)?.prefix;
    there = (await listBackups({ remote: target.backend, prefix })).find((e) => e.name === entry.name);
  } catch (err) {
    if (signal?.aborted) throw err;
    problems.push(`target ${target.name}: cannot be read (${messageOf(err)}): its copy was not checked`);
    return;
  }
  if (!there?.locations.remote) {
    problems.push(`target ${target.name}: holds no copy of ${entry.name} (pgbak copy ${entry.name} --to ${target.name})`);
    return;
  }
  const r = await checkCopy(there, 'remote', target.backend, signal, `target ${target.name}`);
  if (r) copies.push(r);
  else problems.push(`target ${target.name}: ${there.locations.remote.problems.join('; ') || 'not a complete copy'}: nothing to check`);
}

async function writeRecord(backend: StorageBackend, record: VerificationRecord, signal: AbortSignal | undefined): Promise<void> {
  const body = Buffer.from(JSON.stringify(record, null, 2) + '\n');
  await backend.put(verificationKey(record.name), Readable.from([body]), {
    contentLength: body.length,
    contentType: 'application/json',
    signal,
  });
}

async function verifyEntry(
  entry: CatalogEntry,
  backends: SourceBackends,
  extra: readonly NamedBackend[],
  options: VerifyOptions,
  logger: Logger,
): Promise<BackupVerification> {
  const t0 = Date.now();
  const base = { name: entry.name, database: entry.database };
  const copies: CopyResult[] = [];
  const problems: string[] = [];
  const entryChecks: Check[] = [];
  let rt: RestoreTestResult | undefined;
  let rtFrom: StorageBackend | undefined;
  try {
    for (const where of ['local', 'remote'] as const) {
      const backend = backends[where];
      const copy = entry.locations[where];
      if (!backend || !copy) continue;
      const r = await checkCopy(entry, where, backend, options.signal);
      if (r) copies.push(r);
      else
        problems.push(
          `${where}: ${copy.problems.join('; ') || 'not a complete copy'}: not a complete copy, nothing to check (no verification record written there)`,
        );
    }
    for (const t of extra) await checkTargetCopy(entry, t, options.signal, copies, problems);
    if (copies.length === 0) {
      entryChecks.push({ check: 'manifest', ok: false, detail: `no copy with a manifest: ${entry.problems.join('; ') || entry.state}` });
    }
    const local = entry.locations.local?.manifestData;
    const remote = entry.locations.remote?.manifestData;
    const disagree = entry.problems.find((p) => p.startsWith('the local and remote manifests disagree'));
    if (local && remote && disagree && backends.local && backends.remote) {
      entryChecks.push({
        check: 'manifests',
        ok: false,
        detail: `${backends.local.urlOf(entry.locations.local!.manifest!.key)} and ${backends.remote.urlOf(entry.locations.remote!.manifest!.key)}: ${disagree.replace(/^the local and remote manifests disagree/, 'disagree')}`,
      });
    }
    const checksumOk = entryChecks.every((c) => c.ok) && copies.every((c) => c.checks.every((x) => x.ok));
    if (options.restoreTest && checksumOk) {
      const copy = copies.find((c) => c.usable)?.usable;
      if (!copy) throw new NotFoundError(`backup ${entry.name} has no copy to restore`);
      rt = await restoreTest({ job: options.job, manifest: copy.manifest, copy, preVerified: true, logger, signal: options.signal });
      rtFrom = copy.backend;
    }
  } catch (err) {
    const e = toAppError(err);
    logger.error('verification could not run', { backup: entry.name, error: e.message });
    const checks = [...copies.flatMap((c) => c.checks), ...entryChecks];
    return {
      ...base,
      ok: false,
      kind: options.restoreTest ? 'restore-test' : 'checksum',
      exitCode: e.exitCode,
      durationMs: Date.now() - t0,
      checks,
      problems,
      restoreTest: rt,
      recordedIn: [],
      error: { code: e.code, message: e.message, hint: e.hint },
    };
  }
  const copyChecks = copies.flatMap((c) => c.checks);
  const checksumOk = entryChecks.every((c) => c.ok) && copyChecks.every((c) => c.ok);
  const ok = checksumOk && (rt?.ok ?? true);
  const kind = rt ? 'restore-test' : 'checksum';
  const durationMs = Date.now() - t0;
  const all = [...copyChecks, ...entryChecks, ...(rt?.checks ?? [])];
  const verifiedAt = new Date().toISOString();
  const recordedIn: string[] = [];
  // Each location's record holds only that copy's checks (and the restore test's, when it restored from that copy).
  for (const c of copies) {
    if (!c.recordable) continue;
    const withTest = rt !== undefined && rtFrom === c.backend;
    const checks = [...c.checks, ...(withTest ? rt!.checks : [])];
    const copyOk = checks.every((x) => x.ok);
    const copyKind = withTest ? 'restore-test' : 'checksum';
    // A passing checksum check does not replace this copy's record of a passing restore test, which proves more.
    const previous = c.previous;
    if (copyOk && copyKind === 'checksum' && previous?.ok === true && previous.kind === 'restore-test') continue;
    const record: VerificationRecord = {
      format: 'pgbak-verification',
      version: 1,
      name: entry.name,
      verifiedAt,
      ok: copyOk,
      kind: copyKind,
      durationMs,
      checks,
    };
    try {
      await writeRecord(c.backend, record, options.signal);
      recordedIn.push(c.backend.urlOf(verificationKey(entry.name)));
    } catch (err) {
      logger.warn('could not write the verification record', { location: c.backend.location, error: toAppError(err).message });
    }
  }
  const exitCode = !checksumOk ? ExitCode.integrity : rt && !rt.ok ? ExitCode.verifyFailed : ExitCode.ok;
  for (const p of problems) logger.warn(`${entry.name}: ${p}`);
  logger[ok ? 'info' : 'error'](`verification ${ok ? 'passed' : 'FAILED'}`, {
    backup: entry.name,
    kind,
    seconds: (durationMs / 1000).toFixed(1),
    ...(ok
      ? {}
      : {
          failed: all
            .filter((c) => !c.ok)
            .map((c) => `${c.check}: ${c.detail}`)
            .join('; '),
        }),
  });
  return { ...base, ok, kind, exitCode, durationMs, checks: all, problems, restoreTest: rt, recordedIn, error: undefined };
}

/**
 * Check backups against their manifests — every copy, local and remote (the remote one
 * streamed, never stored), each against its own manifest — and with `restoreTest` restore one
 * into a scratch database and check it. Writes a verification record beside each copy that has
 * a manifest, with that copy's checks, so `pgbak list` shows it. When the bucket cannot be read,
 * BACKUP_DIR alone is verified (one warning). Throws only when the backups cannot be found
 * (NotFoundError) or the job's server is ambiguous; per-backup results otherwise.
 */
export async function verify(options: VerifyOptions): Promise<VerifyReport> {
  const { job } = options;
  const logger = (options.logger ?? silentLogger).child({ database: job.database });
  await using storage = openStorage(job, { signal: options.signal, shared: options.storage });
  const source = new CatalogSource({ local: storage.local, remote: storage.remote });
  const warnings: string[] = [];
  let entries: CatalogEntry[] = [];
  const withBase = Boolean(options.restoreTest && !options.name && options.pgbakCommand);
  let noDumps: NotFoundError | undefined;
  if (options.name) entries = [await findByName(source, options.name)];
  else if (options.all) {
    const identity = await jobIdentity(job, { local: storage.local });
    const own = ownBackups(await source.list(job.filePrefix), identity);
    if (own.ambiguousServers.length > 0) {
      warnings.push(
        `the backups of ${job.database} come from ${own.ambiguousServers.length} servers and this host cannot tell which is its own: verifying all of them (${newestPerServer(own.ofDatabase).join('; ')})`,
      );
    }
    entries = own.mine;
    const now = new Date();
    for (const e of entries)
      if (isFromTheFuture(e, now)) warnings.push(futureWarning(e, now).replace(/: not taken as the newest backup$/, ''));
    if (entries.length === 0) {
      throw new NotFoundError(
        `no backups of ${job.database} in ${storage.local.location}${storage.remote && !source.bucketError ? ` or ${storage.remote.location}` : ''}`,
        { hint: source.hint('`pgbak list` shows every backup') },
      );
    }
  } else {
    const identity = await jobIdentity(job, { local: storage.local });
    const hasManifest = (e: CatalogEntry) => [e.locations.local, e.locations.remote].some((c) => c?.manifest !== undefined);
    try {
      const choice = await findLatest(source, { prefix: job.filePrefix, identity, accept: hasManifest, what: 'backup with a manifest' });
      entries = [choice.entry];
      warnings.push(...choice.skipped);
    } catch (err) {
      // A job with base backups only still has something to restore-test.
      if (!(withBase && err instanceof NotFoundError)) throw err;
      noDumps = err;
    }
  }
  warnings.unshift(...source.warnings);
  for (const w of warnings) logger.warn(w);
  const results: BackupVerification[] = [];
  for (const entry of entries) {
    if (options.signal?.aborted) break;
    results.push(await verifyEntry(entry, source.backends, storage.extra ?? [], options, logger));
  }
  const complete = results.length === entries.length;
  if (withBase && !options.signal?.aborted) {
    const { verifyBaseBackup } = await import('./verify-base.js');
    const base = await verifyBaseBackup({ job, pgbakCommand: options.pgbakCommand!, logger, signal: options.signal });
    if (base) results.push(base);
  }
  if (noDumps && results.length === 0) throw noDumps;
  const exitCode = combinedExitCode(results.map((r) => r.exitCode));
  return { ok: exitCode === ExitCode.ok && complete, exitCode, results, warnings };
}

/**
 * BACKUP_VERIFY=restore-test: after a successful backup, verify it with a restore test. A copy
 * that differs from its manifest (exit 9) or a failed restore test (exit 14) turns the run into
 * a failure with that exit code: a backup that does not restore is no backup. When the test
 * cannot run at all (verification server down, no pg_restore) the backup stays ok with a warning.
 */
export async function restoreTestAfterBackup(options: {
  job: JobConfig;
  result: BackupResult;
  logger: Logger;
  signal?: AbortSignal | undefined;
}): Promise<BackupResult> {
  const { job, result, logger } = options;
  if (result.status !== 'ok' || job.verify.mode !== 'restore-test' || !result.name || options.signal?.aborted) return result;
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
