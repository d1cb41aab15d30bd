import { availableParallelism } from 'node:os';
import type { JobConfig } from '../config/job.js';
import type { WalSettings } from '../config/job-sections.js';
import { type Compression, formatCompression } from '../config/parsers.js';
import { AppError, ExitCode } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { formatDuration } from '../model/human-units.js';
import { ChildStage } from '../pipeline/child-stage.js';
import { streamToStorage } from '../pipeline/stream-to-storage.js';
import { type ClusterFacts, clusterFacts } from '../postgres/cluster-facts.js';
import { childConnection, connect } from '../postgres/connection.js';
import { findPgTool } from '../postgres/pg-tools.js';
import { openStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { type BaseManifest, basePrefix, writeBaseManifest } from '../wal/base-manifest.js';
import { claimArchive, listArchived } from '../wal/wal-archive.js';
import { encodeStages, encodingSuffix } from '../wal/wal-encoding.js';
import { parseLsn, segmentsBetween } from '../wal/wal-names.js';
import { type BackupHistory, parseBackupHistory, readArchivedText } from '../wal/wal-read.js';
import { walBackend } from './wal-job.js';

export interface BaseBackupOptions {
  readonly job: JobConfig;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
  /** How long to wait for the WAL from the backup's start to its stop to reach the archive (default 60 s). */
  readonly archiveTimeoutMs?: number | undefined;
}

export interface BaseBackupResult {
  readonly manifest: BaseManifest;
  /** The bucket copy failed; the local copy (and its manifest) is good. */
  readonly remoteError: AppError | undefined;
}

/**
 * `pgbak basebackup`: `pg_basebackup -D - -Ft -X none` streamed through the WAL compression and
 * gpg into BACKUP_DIR and the bucket, then the archive check (the backup history file and every
 * segment from the start to the stop location must be in the WAL archive, as pgBackRest's
 * archive-check), then the manifest, last. A failure before the manifest removes the artifact.
 */
export async function basebackup(options: BaseBackupOptions): Promise<BaseBackupResult> {
  const started = Date.now();
  const { job, logger } = options;
  const client = await connect(job.databaseUrl);
  const facts = await clusterFacts(client).finally(() => client.end().catch(() => undefined));
  if (facts.archiveMode === 'off') {
    throw new AppError('archive-off', 'archive_mode is off: a base backup without the WAL archive cannot be restored', {
      exitCode: ExitCode.usage,
      hint: "set archive_mode = on and archive_command = 'pgbak wal-push %p' in postgresql.conf and restart PostgreSQL (README, Point-in-time recovery)",
    });
  }
  if (facts.extraTablespaces.length > 0) {
    throw new AppError(
      'extra-tablespaces',
      `the cluster has tablespaces outside the data directory (${facts.extraTablespaces.join(', ')})`,
      {
        exitCode: ExitCode.usage,
        hint: 'pgbak basebackup streams one tar of the data directory (pg_basebackup -D - -Ft), which cannot hold other tablespaces; move them to pg_default, or use dumps (pgbak backup) for this cluster',
      },
    );
  }
  const tool = await findPgTool('pg_basebackup', facts.major, job.pgTools.pgDumpPath);
  await using storage = openStorage(job, { signal: options.signal });
  const archive = walBackend(storage);
  await claimArchive(archive, facts.systemIdentifier, facts.walSegmentSize);

  const startTime = new Date();
  const name = `base_${stamp(startTime)}`;
  const label = `pgbak ${name}`;
  const key = `${basePrefix(facts.systemIdentifier)}${name}.tar${encodingSuffix(job.wal.compression, Boolean(job.gpgRecipient))}`;
  const conn = childConnection(job.databaseUrl);
  const compression = baseCompression(job.wal, facts, tool.major);
  logger.info('base backup started', {
    backup: name,
    server: facts.serverVersion,
    timeline: facts.timeline,
    compression: compression.server ? `server-${compression.server}` : formatCompression(job.wal.compression),
  });
  const source = new ChildStage({
    label: 'pg_basebackup',
    command: tool.path,
    args: ['-D', '-', '-Ft', '-X', 'none', '-c', 'fast', '-l', label, ...compression.args, '-d', conn.dbnameArg],
    env: conn.env,
    input: false,
  });
  const stored = await streamToStorage({
    source,
    stages: encodeStages(compression.server ? NO_COMPRESSION : job.wal.compression, job.gpgRecipient, { threads: true }),
    key,
    local: storage.local,
    remote: storage.remote,
    remoteTimeoutMs: job.s3?.timeoutMs,
    logger,
    signal: options.signal,
  });
  const removeArtifact = async () => {
    await storage.local.delete(key).catch(() => undefined);
    if (storage.remote && stored.remote) await storage.remote.delete(key).catch(() => undefined);
  };
  let history: { text: string; parsed: BackupHistory };
  let segments: string[];
  try {
    history = await waitForHistory(archive, facts.systemIdentifier, label, options.archiveTimeoutMs ?? 60_000, options.signal);
    const start = parseLsn(history.parsed.startLsn);
    const stop = parseLsn(history.parsed.stopLsn);
    segments = segmentsBetween(history.parsed.startTimeline, start, stop, facts.walSegmentSize);
    await waitForSegments(archive, facts.systemIdentifier, segments, options.archiveTimeoutMs ?? 60_000, options.signal);
  } catch (err) {
    await removeArtifact();
    throw err;
  }
  const manifest: BaseManifest = {
    format: 'pgbak-basebackup',
    version: 1,
    name,
    systemIdentifier: facts.systemIdentifier,
    serverVersion: facts.serverVersion,
    timeline: history.parsed.startTimeline,
    startLsn: history.parsed.startLsn,
    stopLsn: history.parsed.stopLsn,
    startTime: startTime.toISOString(),
    stopTime: new Date().toISOString(),
    label,
    backupLabel: history.text,
    walSegmentSize: facts.walSegmentSize,
    firstSegment: segments[0]!,
    lastSegment: segments[segments.length - 1]!,
    artifact: {
      key,
      size: stored.size,
      sha256: stored.sha256,
      compression: formatCompression(job.wal.compression),
      encryptedTo: job.gpgRecipient ?? null,
    },
    copies: stored.remote ? ['local', 'remote'] : ['local'],
    durationMs: Date.now() - started,
  };
  await writeBaseManifest(storage.local, manifest);
  let remoteError = stored.remoteError;
  if (storage.remote && stored.remote) {
    try {
      await writeBaseManifest(storage.remote, manifest);
    } catch (err) {
      remoteError = err instanceof AppError ? err : new AppError('upload-failed', String(err), { exitCode: ExitCode.storage });
    }
  }
  logger.info('base backup done', { backup: name, size: stored.size, duration: formatDuration(Date.now() - started) });
  return { manifest, remoteError };
}

const NO_COMPRESSION: Compression = { method: 'none', level: 0 };

/**
 * Who compresses the base backup. With zstd or lz4, PostgreSQL 15+ built with the method and a
 * pg_basebackup 15+, the server does (WAL_BASEBACKUP_COMPRESS_ON=server, the default): the
 * walsender compresses as it reads, zstd on as many threads as this host has cores, so a third of
 * the bytes cross the connection and the pipe, and nothing else compresses them (2.9 s instead of
 * 3.6-4.2 s for 800 MB on 2 cores). pg_basebackup cannot then add its backup_manifest to the
 * streamed tar (--no-manifest); pgbak's manifest and sha256 cover the file as before. Otherwise
 * the stream stage compresses, as for WAL segments. The stored file is the same .tar.zst either way.
 */
function baseCompression(
  wal: WalSettings,
  facts: ClusterFacts,
  clientMajor: number,
): { server: string | undefined; args: readonly string[] } {
  const { method, level } = wal.compression;
  const serverSide =
    wal.baseCompressOn === 'server' &&
    clientMajor >= 15 &&
    (method === 'zstd' || method === 'lz4') &&
    facts.serverCompression.includes(method);
  if (!serverSide) return { server: undefined, args: [] };
  const detail = method === 'zstd' ? `level=${level},workers=${availableParallelism()}` : `level=${level}`;
  return { server: `${method}:${level}`, args: [`--compress=server-${method}:${detail}`, '--no-manifest'] };
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

function archiveTimeout(what: string, timeoutMs: number): AppError {
  return new AppError('archive-check-failed', `${what} did not reach the WAL archive within ${formatDuration(timeoutMs)}`, {
    exitCode: ExitCode.storage,
    hint: "check archive_command (pgbak wal-push %p) and the server log's archiver lines; SELECT * FROM pg_stat_archiver shows its failures",
  });
}

/**
 * The archive check's wait between two listings: 100 ms at first (the file usually arrives within
 * a second of the backup's stop, and every 500 ms poll cost the backup up to half a second), then
 * growing to 500 ms so a slow archiver is not listed ten times a second for a minute.
 */
const pollDelay = (round: number) => Math.min(500, Math.round(100 * 1.5 ** round));

/** The backup history file PostgreSQL archives at the backup's stop, found by its label. */
async function waitForHistory(
  archive: StorageBackend,
  systemIdentifier: string,
  label: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ text: string; parsed: BackupHistory }> {
  const deadline = Date.now() + timeoutMs;
  const seen = new Set<string>();
  for (let round = 0; ; round++) {
    const files = (await listArchived(archive, systemIdentifier)).filter((a) => a.file.kind === 'backup' && !seen.has(a.key));
    for (const f of files.reverse()) {
      seen.add(f.key);
      const text = await readArchivedText(archive, f, signal);
      const parsed = parseBackupHistory(text);
      if (parsed?.label === label) return { text, parsed };
    }
    if (Date.now() > deadline || signal?.aborted) throw archiveTimeout(`the backup history file of "${label}"`, timeoutMs);
    await sleep(pollDelay(round), signal);
  }
}

async function waitForSegments(
  archive: StorageBackend,
  systemIdentifier: string,
  segments: readonly string[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let round = 0; ; round++) {
    const have = new Set((await listArchived(archive, systemIdentifier)).map((a) => a.file.name));
    const missing = segments.filter((s) => !have.has(s));
    if (missing.length === 0) return;
    if (Date.now() > deadline || signal?.aborted) throw archiveTimeout(`WAL segment ${missing[0]}`, timeoutMs);
    await sleep(pollDelay(round), signal);
  }
}
