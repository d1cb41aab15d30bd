import { Readable } from 'node:stream';
import { NotFoundError } from '../errors/index.js';
import type { StorageBackend } from '../storage/storage-backend.js';

/**
 * wal-push failures, for `status` and the metrics: `wal/push-failures.json`, beside the archive's
 * cluster marker, in BACKUP_DIR and in the WAL archive (the bucket). A failing `pgbak wal-push`
 * (archive_command) counts itself in both; PostgreSQL retries it, so the count says how often the
 * archiver hit a problem and the time when it last did.
 *
 * Both places, because the commonest failure is a bucket that cannot be reached: then only the
 * copy in BACKUP_DIR (on the database host) gets the failure, and a daemon on the same host sees
 * it at once; a daemon elsewhere sees it in the bucket with the next failure that can reach it.
 * Readers take the copy with the higher count. Successful pushes never touch it (the hot path).
 */
export const PUSH_FAILURES_KEY = 'wal/push-failures.json';

export interface WalPushFailures {
  readonly format: 'pgbak-wal-push-failures';
  /** Failed wal-push calls so far (both copies count from the higher of the two). */
  readonly count: number;
  readonly lastFailureAt: string;
  /** The file PostgreSQL handed over in the last failure. */
  readonly lastFile: string | null;
  readonly lastError: { readonly code: string; readonly message: string };
  readonly host: string;
}

/** The record in one backend; undefined when there is none or it is not ours. */
export async function readPushFailures(backend: StorageBackend, signal?: AbortSignal): Promise<WalPushFailures | undefined> {
  let body: Readable;
  try {
    body = await backend.get(PUSH_FAILURES_KEY, signal ? { signal } : {});
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  try {
    const r = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WalPushFailures;
    return r.format === 'pgbak-wal-push-failures' && Number.isInteger(r.count) ? r : undefined;
  } catch {
    return undefined;
  }
}

/** The record with the higher count (the later failure on a tie). */
export function newerFailures(a: WalPushFailures | undefined, b: WalPushFailures | undefined): WalPushFailures | undefined {
  if (!a || !b) return a ?? b;
  if (a.count !== b.count) return a.count > b.count ? a : b;
  return a.lastFailureAt >= b.lastFailureAt ? a : b;
}

export async function writePushFailures(backend: StorageBackend, record: WalPushFailures, signal?: AbortSignal): Promise<void> {
  const body = Buffer.from(JSON.stringify(record, null, 2) + '\n');
  await backend.put(PUSH_FAILURES_KEY, Readable.from([body]), {
    contentLength: body.length,
    contentType: 'application/json',
    ...(signal ? { signal } : {}),
  });
}
