import { basename, dirname, join, resolve } from 'node:path';
import type { Logger } from '../logging/logger.js';
import { openStorage } from '../storage/job-storage.js';
import { identityOfSegment } from '../wal/cluster-identity.js';
import { claimArchive } from '../wal/wal-archive.js';
import { DEFAULT_SEGMENT_SIZE, parseWalFileName } from '../wal/wal-names.js';
import {
  claimWorker,
  fileIdentity,
  readyAfter,
  recordFailed,
  recordPushed,
  releaseWorker,
  removeStaleRecords,
  spooled,
  trimWorkerLog,
} from '../wal/wal-spool.js';
import { cpuSecondsOfProcess } from '../wal/process-cpu.js';
import { PUSH_AHEAD } from './wal-push-ahead.js';
import { pushOne, sha256OfFile } from './wal-push.js';
import { walBackend, type WalJob } from './wal-job.js';

export interface PushAheadWorkerOptions {
  readonly job: WalJob;
  /** The segment whose wal-push started the worker (pg_wal/…): it pushes the `.ready` ones after it. */
  readonly path: string;
  /** Push `path` itself too, first: its call started the worker and waits for the record. */
  readonly from?: boolean | undefined;
  readonly signature: string;
  /** The signature of the settings as they are now: when it differs from `signature` (a settings file was edited), the worker ends. */
  readonly signatureNow?: (() => Promise<string>) | undefined;
  readonly logger: Logger;
  readonly cwd?: string | undefined;
  /** Tests: shorter limits. */
  readonly limits?: Partial<typeof PUSH_AHEAD> | undefined;
}

/**
 * The push-ahead worker, as pgBackRest's asynchronous archive-push and WAL-G's do it: one per
 * pg_wal (a lock in the spool), started detached by a wal-push that saw more `.ready` segments.
 * It stores the segments (and backup history files: a base backup's wait for its own is then one
 * spool record, not a node start) PostgreSQL has marked `.ready`, `parallel` at a time over one S3 client,
 * and records each stored one in the spool; PostgreSQL's own calls for them find the record (or
 * wait for it) and exit 0 without loading the configuration or reaching the bucket. It keeps
 * looking for new `.ready` files while the server writes WAL, and ends when there are none for a
 * moment. A segment it cannot store is marked failed: PostgreSQL's call for it then pushes it
 * itself and reports the error. Returns how many segments it stored.
 */
export async function runPushAheadWorker(o: PushAheadWorkerOptions): Promise<number> {
  const limits = { ...PUSH_AHEAD, ...o.limits };
  const path = resolve(o.cwd ?? process.cwd(), o.path);
  const walDir = dirname(path);
  if (basename(walDir) !== 'pg_wal') return 0;
  if (!(await claimWorker(walDir, o.signature))) return 0;
  const { logger } = o;
  let stored = 0;
  const started = Date.now();
  try {
    trimWorkerLog();
    await removeStaleRecords(walDir);
    const identity = await identityOfSegment(path);
    await using storage = openStorage(o.job);
    const backend = walBackend(storage);
    await claimArchive(backend, identity.systemIdentifier, identity.segmentSize ?? DEFAULT_SEGMENT_SIZE);
    let idleSince = Date.now();
    const after = basename(path);
    const inFlight = new Set<string>();
    const done = new Set<string>();
    const running = new Set<Promise<void>>();
    const push = async (name: string) => {
      const file = join(walDir, name);
      try {
        if (await spooled(walDir, name, o.signature)) return;
        const parsed = parseWalFileName(name)!;
        // A backup history file has no header: it is this pg_wal's, whose cluster the first segment named.
        if (parsed.kind === 'segment' && (await identityOfSegment(file)).systemIdentifier !== identity.systemIdentifier) return;
        const before = await fileIdentity(file);
        const sha256 = await sha256OfFile(file);
        await pushOne({
          backend,
          job: o.job,
          path: file,
          file: parsed,
          systemIdentifier: identity.systemIdentifier,
          sha256,
          logger,
        });
        const after = await fileIdentity(file);
        await recordPushed(walDir, name, sha256, o.signature, before === after ? after : undefined);
        stored++;
      } catch (err) {
        logger.warn('push-ahead could not store a segment; PostgreSQL will hand it over again', {
          file: name,
          error: (err as Error).message,
        });
        await recordFailed(walDir, name, o.signature).catch(() => undefined);
      }
    };
    while (Date.now() - started < limits.lifeMs) {
      if (o.signatureNow && (await o.signatureNow()) !== o.signature) {
        logger.info('the settings files changed: the push-ahead worker ends; the next call starts one with the new settings');
        break;
      }
      const next = (await readyAfter(walDir, after, o.from === true)).filter((n) => !inFlight.has(n) && !done.has(n));
      if (next.length > 0) idleSince = Date.now();
      for (const name of next) {
        if (inFlight.size >= limits.parallel) break;
        inFlight.add(name);
        const p: Promise<void> = push(name).finally(() => {
          inFlight.delete(name);
          done.add(name);
          running.delete(p);
        });
        running.add(p);
      }
      if (running.size === 0 && Date.now() - idleSince > limits.idleMs) break;
      await Promise.race([new Promise((r) => setTimeout(r, limits.scanMs)), ...running]);
    }
    await Promise.allSettled(running);
  } catch (err) {
    logger.warn('the push-ahead worker stopped; PostgreSQL hands each segment over itself', { error: (err as Error).message });
  } finally {
    await releaseWorker(walDir);
  }
  // Its CPU (node, and the zstd and gpg it ran) per segment: what decides segments/s on a small host.
  const cpu = await cpuSecondsOfProcess();
  logger.info('push-ahead worker done', {
    segments: stored,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    ...(cpu === undefined ? {} : { cpuSeconds: cpu, cpuSecondsPerSegment: stored > 0 ? Math.round((cpu / stored) * 1000) / 1000 : 0 }),
  });
  return stored;
}
