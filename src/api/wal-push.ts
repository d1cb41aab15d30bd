import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AppError, ExitCode, UsageError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { ChildStage } from '../pipeline/child-stage.js';
import { HashStage } from '../pipeline/hash-stage.js';
import { openStorage } from '../storage/job-storage.js';
import { identityOfDataDirectory, identityOfSegment } from '../wal/cluster-identity.js';
import { claimArchive, findArchived, walKey } from '../wal/wal-archive.js';
import { encodeStages, encodingSuffix } from '../wal/wal-encoding.js';
import { DEFAULT_SEGMENT_SIZE, parseWalFileName, type WalFileName } from '../wal/wal-names.js';
import { readyAfter, workerRunning } from '../wal/wal-spool.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { walBackend, type WalJob } from './wal-job.js';

export interface WalPushOptions {
  readonly job: WalJob;
  /** archive_command's %p: relative to the data directory, where PostgreSQL runs it. */
  readonly path: string;
  readonly cwd?: string | undefined;
  /** The data directory (for history and backup files, whose system identifier is in pg_control); default: from the path. */
  readonly pgdata?: string | undefined;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
  /**
   * After the file, when later segments wait `.ready`, start the push-ahead worker with these
   * arguments (wal-push-worker.ts) unless one runs: it stores them ahead of PostgreSQL's calls.
   */
  readonly pushAhead?: { readonly signature: string; readonly workerArgv: readonly string[] } | undefined;
}

export interface WalPushResult {
  readonly name: string;
  readonly key: string;
  /** `archived` now, or `already-archived` with the same content (PostgreSQL retried after a crash). */
  readonly status: 'archived' | 'already-archived';
  readonly bytes: number;
  readonly systemIdentifier: string;
  readonly durationMs: number;
}

/**
 * `pgbak wal-push %p`: archive one file PostgreSQL hands to archive_command. Resolves only once
 * the file is stored (the put completed); a file already archived with the same content is
 * success, with other content an error (two clusters on one prefix, or corruption) that leaves
 * the archived one untouched. A `.history` file is never replaced: no key is ever overwritten.
 */
export async function walPush(options: WalPushOptions): Promise<WalPushResult> {
  const started = Date.now();
  const { job, logger } = options;
  const cwd = options.cwd ?? process.cwd();
  const path = resolve(cwd, options.path);
  const name = basename(path);
  const file = parseWalFileName(name);
  if (!file) {
    throw new UsageError(`${name} is not a file PostgreSQL archives (a WAL segment, .history, .backup or .partial)`, {
      hint: "use archive_command = 'pgbak wal-push %p'",
    });
  }
  const pgdata = options.pgdata ?? (basename(dirname(path)) === 'pg_wal' ? dirname(dirname(path)) : cwd);
  const identity =
    file.kind === 'segment' || file.kind === 'partial' ? await identityOfSegment(path) : await identityOfDataDirectory(pgdata);
  const sha256 = await sha256OfFile(path);

  await using storage = openStorage(job, { signal: options.signal });
  const backend = walBackend(storage);
  await claimArchive(backend, identity.systemIdentifier, identity.segmentSize ?? DEFAULT_SEGMENT_SIZE);
  const result = await pushOne({
    backend,
    job,
    path,
    file,
    systemIdentifier: identity.systemIdentifier,
    sha256,
    logger,
    signal: options.signal,
  });
  if (file.kind === 'segment' && basename(dirname(path)) === 'pg_wal') {
    // Segments wal-fetch fetched ahead for a recovery that ended before them (recovery_target_time).
    await rm(join(dirname(path), 'pgbak_prefetch'), { recursive: true, force: true }).catch(() => undefined);
  }
  if (file.kind === 'segment' && options.pushAhead && basename(dirname(path)) === 'pg_wal') {
    await startPushAheadWorker(dirname(path), name, options.pushAhead.signature, options.pushAhead.workerArgv, logger);
  }
  return { ...result, durationMs: Date.now() - started };
}

export interface PushOne {
  readonly backend: StorageBackend;
  readonly job: WalJob;
  readonly path: string;
  readonly file: WalFileName;
  readonly systemIdentifier: string;
  readonly sha256: string;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
}

/** Store one file under its key, unless it is there already; other content under its name is a conflict. */
export async function pushOne(o: PushOne): Promise<Omit<WalPushResult, 'durationMs'>> {
  const { backend, job, file, logger } = o;
  const name = file.name;
  const existing = await findArchived(backend, o.systemIdentifier, name);
  const same = existing.find((a) => a.sha256 === o.sha256);
  const base = { name, systemIdentifier: o.systemIdentifier };
  if (same) {
    logger.info('already archived with the same content', { file: name, key: same.key });
    return { ...base, key: same.key, status: 'already-archived', bytes: 0 };
  }
  if (existing.length > 0) {
    const error = new AppError(
      'wal-conflict',
      `${name} is already archived with other content (${backend.urlOf(existing[0]!.key)}); the archived file is kept`,
      {
        exitCode: ExitCode.integrity,
        hint:
          file.kind === 'history'
            ? 'a timeline history file is never replaced: two servers promoted to the same timeline? give one its own STORAGE_PREFIX'
            : 'two servers archive into one prefix (a promoted copy, split brain?) or the file is corrupt: stop one of them and check `pgbak verify --wal`',
      },
    );
    logger.error(error.message, { file: name });
    await notifyConflict(job, error, name, logger);
    throw error;
  }

  // History and backup history files hold LSNs, times and a label, no data (like the manifests):
  // they stay readable without the secret key, so `basebackup` and `verify --wal` can read them.
  const recipient = file.kind === 'segment' || file.kind === 'partial' ? job.gpgRecipient : undefined;
  const key = walKey(o.systemIdentifier, name, o.sha256, encodingSuffix(job.wal.compression, Boolean(recipient)));
  const controller = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, controller.signal]) : controller.signal;
  // zstd and lz4 read the segment themselves; node only carries the compressed bytes to the upload.
  const childReads = job.wal.compression.method === 'zstd' || job.wal.compression.method === 'lz4';
  const stages = encodeStages(job.wal.compression, recipient, childReads ? { file: o.path } : {});
  ChildStage.connect(stages);
  const body = new HashStage();
  const piping = pipeline(childReads ? [...stages, body] : [createReadStream(o.path), ...stages, body], { signal });
  const put = backend.put(key, body, { signal });
  try {
    await Promise.all([piping, put]);
  } catch (err) {
    controller.abort();
    await Promise.allSettled([piping, put]);
    throw err;
  }
  logger.info('archived', { file: name, key, bytes: body.bytes });
  return { ...base, key, status: 'archived', bytes: body.bytes };
}

/**
 * Start the push-ahead worker (`pgbak wal-push --ahead-worker …`, detached: this call returns as
 * soon as its own file is stored) when later segments wait `.ready` and no worker runs.
 */
async function startPushAheadWorker(
  walDir: string,
  after: string,
  signature: string,
  argv: readonly string[],
  logger: Logger,
): Promise<void> {
  if ((await readyAfter(walDir, after)).length === 0 || (await workerRunning(walDir, signature))) return;
  try {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: 'ignore', cwd: process.cwd(), env: process.env });
    child.on('error', (err) => logger.warn('could not start the push-ahead worker', { error: err.message }));
    child.unref();
    logger.debug('started the push-ahead worker', { pid: child.pid ?? 0 });
  } catch (err) {
    logger.warn('could not start the push-ahead worker', { error: (err as Error).message });
  }
}

/** The sha256 of a file, streamed. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * A conflict is never retried away by PostgreSQL: tell someone at once. The webhook gets a JSON
 * POST (`event: "wal-conflict"`, a Slack-compatible `text`), the ping URL its `/fail`. A failed
 * notification is a warning; the push fails either way.
 */
async function notifyConflict(job: WalJob, error: AppError, file: string, logger: Logger): Promise<void> {
  const n = job.notify;
  if (!n?.webhookUrl && !n?.pingUrl) return;
  const { deliverHttp } = await import('../notify/webhook.js');
  const { pingUrlFor } = await import('../notify/ping.js');
  const sends: Promise<void>[] = [];
  if (n.webhookUrl) {
    const body = JSON.stringify({
      event: 'wal-conflict',
      status: 'failed',
      file,
      text: `pgbak wal-push: ${error.message}`,
      error: { code: error.code, message: error.message, hint: error.hint ?? null },
    });
    sends.push(deliverHttp(n.webhookUrl, { method: 'POST', body, contentType: 'application/json', timeoutMs: 10_000 }));
  }
  if (n.pingUrl) sends.push(deliverHttp(pingUrlFor(n.pingUrl, 'fail'), { method: 'GET', timeoutMs: 10_000 }));
  for (const r of await Promise.allSettled(sends)) {
    if (r.status === 'rejected')
      logger.warn('could not send the WAL conflict notification', { error: String((r.reason as Error)?.message ?? r.reason) });
  }
}
