import { hostname } from 'node:os';
import { toAppError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { openStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { newerFailures, readPushFailures, writePushFailures, type WalPushFailures } from '../wal/wal-push-failures.js';
import { walBackend, type WalJob } from './wal-job.js';

/** How long recording a failure may take: PostgreSQL's archiver waits for the failing call. */
const RECORD_TIMEOUT_MS = 5_000;

/**
 * A wal-push failed: count it in BACKUP_DIR and in the WAL archive (wal/wal-push-failures.ts),
 * each from the higher count of the two. Never throws and never takes longer than a few seconds:
 * the push has failed already, and its own error is what PostgreSQL logs.
 */
export async function recordWalPushFailure(job: WalJob, file: string, err: unknown, logger: Logger): Promise<void> {
  const signal = AbortSignal.timeout(RECORD_TIMEOUT_MS);
  try {
    await using storage = openStorage(job, { signal });
    const archive = walBackend(storage);
    const backends: StorageBackend[] = archive === storage.local ? [storage.local] : [storage.local, archive];
    const found = await Promise.all(backends.map((b) => readPushFailures(b, signal).catch(() => undefined)));
    const previous = found.reduce<WalPushFailures | undefined>((a, b) => newerFailures(a, b), undefined);
    const e = toAppError(err);
    const redact = (s: string) => logger.redactor?.redact(s) ?? s;
    const record: WalPushFailures = {
      format: 'pgbak-wal-push-failures',
      count: (previous?.count ?? 0) + 1,
      lastFailureAt: new Date().toISOString(),
      lastFile: file.split('/').pop() ?? null,
      lastError: { code: e.code, message: redact(e.message) },
      host: hostname(),
    };
    const written = await Promise.allSettled(backends.map((b) => writePushFailures(b, record, signal)));
    for (const [i, r] of written.entries()) {
      if (r.status === 'rejected')
        logger.debug('could not record the wal-push failure', { location: backends[i]!.location, error: toAppError(r.reason).message });
    }
  } catch (e) {
    logger.debug('could not record the wal-push failure', { error: toAppError(e).message });
  }
}
