import type { VerificationRecord } from '../catalog/manifest.js';
import type { JobConfig } from '../config/job.js';
import { isAppError, toAppError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { openStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { baseManifestKey } from '../wal/base-manifest.js';
import { baseVerificationKey, writeBaseVerification } from '../wal/base-verification.js';
import { readMarker } from '../wal/wal-archive.js';
import { baseRestoreTest } from './restore-test-base.js';
import type { BackupVerification } from './verify-result.js';
import { walBackend } from './wal-job.js';

/**
 * `verify --restore-test` of a job whose storage holds a WAL archive: the restore test of its
 * newest base backup (restore-test-base.ts) as one more verification result, recorded beside the
 * base backup in each location that holds it, like a dump's restore test. Undefined when the job
 * has no WAL archive or no base backup. A test that cannot run (root, no server binaries, the
 * bucket unreachable) is a result with `error`, as for dumps.
 */
export async function verifyBaseBackup(options: {
  job: JobConfig;
  pgbakCommand: readonly string[];
  logger: Logger;
  signal?: AbortSignal | undefined;
}): Promise<BackupVerification | undefined> {
  const { job, logger } = options;
  await using storage = openStorage(job, { signal: options.signal });
  const marker = await readMarker(walBackend(storage)).catch(() => undefined);
  if (!marker) return undefined;
  const t0 = Date.now();
  let r;
  try {
    r = await baseRestoreTest(options);
  } catch (err) {
    const e = toAppError(err);
    if (isAppError(err) && err.code === 'interrupted') throw err;
    logger.error('restore test of the base backup could not run', { error: e.message });
    return {
      name: 'base backup',
      database: job.database,
      ok: false,
      kind: 'restore-test',
      exitCode: e.exitCode,
      durationMs: Date.now() - t0,
      checks: [],
      restoreTest: undefined,
      problems: [],
      recordedIn: [],
      error: { code: e.code, message: e.message, hint: e.hint },
    };
  }
  if (!r) return undefined;
  const record: VerificationRecord = {
    format: 'pgbak-verification',
    version: 1,
    name: r.backup,
    verifiedAt: new Date().toISOString(),
    ok: r.ok,
    kind: 'restore-test',
    durationMs: r.durationMs,
    checks: r.checks,
  };
  const recordedIn: string[] = [];
  const backends: StorageBackend[] = [storage.local, ...(storage.remote ? [storage.remote] : [])];
  for (const b of backends) {
    if (!r.backup || !(await b.stat(baseManifestKey(marker.systemIdentifier, r.backup)).catch(() => undefined))) continue;
    try {
      await writeBaseVerification(b, marker.systemIdentifier, record);
      recordedIn.push(b.urlOf(baseVerificationKey(marker.systemIdentifier, r.backup)));
    } catch (err) {
      logger.warn('could not write the verification record', { location: b.location, error: toAppError(err).message });
    }
  }
  return {
    name: r.backup || 'base backup',
    database: job.database,
    ok: r.ok,
    kind: 'restore-test',
    exitCode: r.exitCode,
    durationMs: r.durationMs,
    checks: r.checks,
    restoreTest: { ok: r.ok, scratchDatabase: r.pgdata, durationMs: r.durationMs, checks: r.checks },
    problems: [],
    recordedIn,
    error: undefined,
  };
}
