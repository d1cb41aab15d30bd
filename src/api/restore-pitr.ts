import { accessSync, constants, createReadStream, existsSync } from 'node:fs';
import { appendFile, chmod, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, NotFoundError, UsageError } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { formatDuration } from '../model/human-units.js';
import { ChildStage, execChild } from '../pipeline/child-stage.js';
import { HashStage } from '../pipeline/hash-stage.js';
import { nullSink } from '../pipeline/null-sink.js';
import { openStorage } from '../storage/job-storage.js';
import { type BaseManifest, listBaseManifests } from '../wal/base-manifest.js';
import { archiveLocation, readMarker } from '../wal/wal-archive.js';
import { decodeStages, parseEncodingSuffix } from '../wal/wal-encoding.js';
import { walRestoreSettings } from './wal-env-file.js';
import { walBackend, type WalJob } from './wal-job.js';
import { startPrefetchWorker } from './wal-prefetch-worker.js';

export interface PitrRestoreOptions {
  readonly job: WalJob;
  /** The new data directory: must not exist, or be empty. */
  readonly pgdata: string;
  /** Recover to this time; undefined with `latest`: to the end of the archive. */
  readonly time?: Date | undefined;
  readonly latest?: boolean | undefined;
  /** A base backup by name (default: the newest that fits). */
  readonly name?: string | undefined;
  /** How restore_command starts pgbak: `[node, /path/to/bin/pgbak]`. */
  readonly pgbakCommand: readonly string[];
  /**
   * False: the restored server does not archive (archive_mode = off), for a restore beside a
   * primary that still archives: its promotion would otherwise put a new timeline into the same
   * archive, which `recovery_target_timeline = latest` of every later restore would follow.
   */
  readonly archive?: boolean | undefined;
  readonly logger: Logger;
  readonly signal?: AbortSignal | undefined;
  readonly now?: () => Date;
}

export interface PitrRestoreResult {
  readonly backup: string;
  readonly pgdata: string;
  /** ISO time of the recovery target, or null: the end of the archive. */
  readonly targetTime: string | null;
  readonly timeline: number;
  readonly source: 'local' | 'remote';
  /** The restore_command written into postgresql.auto.conf (no secrets: they are in envFile). */
  readonly restoreCommand: string;
  /** The 0600 file with the storage settings wal-fetch reads, owned by the data directory's owner. */
  readonly envFile: string;
  /** The WAL prefetch worker started for the recovery (it ends on its own once recovery has ended). */
  readonly prefetchWorkerPid?: number | undefined;
  readonly sizeBytes: number;
  readonly durationMs: number;
}

/**
 * `pgbak restore --time T --pgdata DIR` (or `--latest`): the newest base backup that ended
 * before T, checked and extracted into a new or empty DIR, with recovery.signal and the recovery
 * settings, so that starting DIR recovers from the WAL archive to T and promotes. Every choice
 * (the backup, T against the backups, DIR) is checked before anything is written.
 */
export async function restorePitr(options: PitrRestoreOptions): Promise<PitrRestoreResult> {
  const started = Date.now();
  const { job, logger } = options;
  const pgdata = resolve(options.pgdata);
  if (options.time && options.latest) throw new UsageError('use either --time or --latest, not both');
  if (!options.time && !options.latest && !options.name) throw new UsageError('--pgdata needs --time T, --latest or a base backup name');
  const existed = await checkTarget(pgdata);

  await using storage = openStorage(job, { signal: options.signal });
  const archive = walBackend(storage);
  const marker = await readMarker(archive);
  if (!marker) {
    throw new NotFoundError(`there is no WAL archive at ${archiveLocation(archive)}`, {
      hint: 'check STORAGE_BUCKET and STORAGE_PREFIX; point-in-time recovery needs archive_command = pgbak wal-push and a pgbak basebackup',
    });
  }
  const manifests = new Map<string, { m: BaseManifest; where: 'local' | 'remote' }>();
  if (storage.remote)
    for (const m of await listBaseManifests(storage.remote, marker.systemIdentifier)) manifests.set(m.name, { m, where: 'remote' });
  for (const m of await listBaseManifests(storage.local, marker.systemIdentifier)) manifests.set(m.name, { m, where: 'local' });
  const all = [...manifests.values()].sort((a, b) => (a.m.stopTime < b.m.stopTime ? -1 : 1));
  if (all.length === 0) {
    throw new NotFoundError(
      `no base backup of the cluster ${marker.systemIdentifier} in ${archiveLocation(archive).replace(/wal\/$/, 'base/')}`,
      {
        hint: 'run `pgbak basebackup` first (and regularly: recovery replays the WAL since the newest one)',
      },
    );
  }
  const time = options.time;
  const fits = options.name
    ? all.filter((x) => x.m.name === options.name)
    : time
      ? all.filter((x) => Date.parse(x.m.stopTime) <= time.getTime())
      : all;
  const chosen = fits[fits.length - 1];
  if (!chosen) {
    if (options.name)
      throw new NotFoundError(`no base backup named ${options.name}`, { hint: `the base backups: ${all.map((x) => x.m.name).join(', ')}` });
    throw new UsageError(
      `${time!.toISOString()} is earlier than the end of every base backup: the oldest, ${all[0]!.m.name}, ended at ${all[0]!.m.stopTime}`,
      {
        hint: 'choose a later --time; a base backup can only recover to times after it ended',
      },
    );
  }
  if (time && options.name && Date.parse(chosen.m.stopTime) > time.getTime()) {
    throw new UsageError(`${options.name} ended at ${chosen.m.stopTime}, after ${time.toISOString()}: it cannot recover to that time`);
  }
  const { m, where } = chosen;
  const settings = walRestoreSettings(job, pgdata);

  if (!existed) await mkdir(pgdata, { recursive: true, mode: 0o700 });
  await chmod(pgdata, 0o700);
  const owner = await ownerFor(pgdata, existed);
  const asRoot = owner && process.getuid?.() === 0;
  await settings.write();
  if (asRoot) await execChild('chown', [`${owner.uid}:${owner.gid}`, pgdata, settings.path]);
  // Fetch the WAL recovery needs, from the base backup's start on, ahead of PostgreSQL's calls
  // (wal-prefetch-worker.ts): started now, its start-up and first listing overlap the extraction.
  const worker = startPrefetchWorker({
    pgbakCommand: options.pgbakCommand,
    pgdata,
    envFile: settings.path,
    from: m.firstSegment,
    until: time,
    owner,
    logger,
  });
  logger.info('extracting base backup', { backup: m.name, from: where, pgdata });
  try {
    await extract(storage.local, storage.remote, m, where, pgdata, options.signal);
  } catch (err) {
    worker?.kill();
    await emptyDirectory(pgdata);
    await rm(settings.path, { force: true });
    throw err;
  }
  const restoreCommand = restoreCommandOf(options.pgbakCommand, settings.path);
  const lines = [
    '',
    `# pgbak restore ${new Date().toISOString()}: base backup ${m.name}, recovery to ${time ? time.toISOString() : 'the end of the WAL archive'}`,
    `restore_command = ${confString(restoreCommand)}`,
    // PostgreSQL's recovery_target_time refuses ISO 8601's T and Z: `2026-12-05 17:59:00.000+00`.
    ...(time ? [`recovery_target_time = ${confString(time.toISOString().replace('T', ' ').replace('Z', '+00'))}`] : []),
    "recovery_target_action = 'promote'",
    "recovery_target_timeline = 'latest'",
    ...(options.archive === false ? ["archive_mode = 'off'"] : []),
    '',
  ];
  await appendFile(resolve(pgdata, 'postgresql.auto.conf'), lines.join('\n'), { mode: 0o600 });
  await writeFile(resolve(pgdata, 'recovery.signal'), '', { mode: 0o600 });
  if (asRoot) await execChild('chown', ['-R', `${owner.uid}:${owner.gid}`, pgdata]);
  logger.info('base backup restored; start the server to recover', {
    backup: m.name,
    pgdata,
    duration: formatDuration(Date.now() - started),
  });
  return {
    backup: m.name,
    pgdata,
    targetTime: time ? time.toISOString() : null,
    timeline: m.timeline,
    source: where,
    restoreCommand,
    envFile: settings.path,
    prefetchWorkerPid: worker?.pid,
    sizeBytes: m.artifact.size,
    durationMs: Date.now() - started,
  };
}

/** DIR must not exist or be an empty directory; returns whether it existed. */
async function checkTarget(pgdata: string): Promise<boolean> {
  let entries: string[];
  try {
    entries = await readdir(pgdata);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    if (code === 'ENOTDIR') throw new UsageError(`--pgdata ${pgdata} is a file, not a directory`);
    throw err;
  }
  if (entries.length > 0) {
    throw new UsageError(`--pgdata ${pgdata} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ' …' : ''})`, {
      hint: 'restore into a new or empty directory; pgbak never overwrites a data directory (stop the server and move the old one aside first)',
    });
  }
  return true;
}

async function extract(
  local: import('../storage/storage-backend.js').StorageBackend,
  remote: import('../storage/storage-backend.js').StorageBackend | undefined,
  m: BaseManifest,
  where: 'local' | 'remote',
  pgdata: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const encoding = parseEncodingSuffix(m.artifact.key.replace(/^.*\.tar/, ''));
  if (!encoding) throw new IntegrityError(`${m.artifact.key}: unknown encoding`);
  const path = where === 'local' ? local.localPath(m.artifact.key) : undefined;
  const body: Readable =
    path && existsSync(path) ? createReadStream(path) : await (remote ?? local).get(m.artifact.key, signal ? { signal } : {});
  const hash = new HashStage();
  const stages = decodeStages(encoding);
  const tar = new ChildStage({ label: 'tar', command: 'tar', args: ['-x', '-f', '-', '--no-same-owner', '-C', pgdata], input: true });
  ChildStage.connect([...stages, tar]);
  await pipeline([body, hash, ...stages, tar, nullSink()], ...(signal ? [{ signal }] : []));
  if (hash.sha256 !== m.artifact.sha256 || hash.bytes !== m.artifact.size) {
    throw new IntegrityError(
      `base backup ${m.name} is corrupt: ${hash.bytes} bytes with sha256 ${hash.sha256}, its manifest says ${m.artifact.size} bytes, ${m.artifact.sha256}`,
      { hint: 'the data directory was emptied again; restore from the other copy (--from) or an older base backup' },
    );
  }
}

async function emptyDirectory(dir: string): Promise<void> {
  for (const e of await readdir(dir).catch(() => [] as string[])) await rm(resolve(dir, e), { recursive: true, force: true });
}

/** Who owns the restored files: the existing directory's owner, else its parent's. */
async function ownerFor(pgdata: string, existed: boolean): Promise<{ uid: number; gid: number } | undefined> {
  const s = await stat(existed ? pgdata : dirname(pgdata)).catch(() => undefined);
  return s ? { uid: s.uid, gid: s.gid } : undefined;
}

/**
 * restore_command: bin/pgbak-wal-fetch (the sh client: prefetched files without node) when it is
 * installed beside bin/pgbak and node's path needs no quoting, else `node pgbak wal-fetch`.
 */
function restoreCommandOf(pgbakCommand: readonly string[], envFile: string): string {
  const [node, bin] = pgbakCommand;
  const client = bin && join(dirname(bin), 'pgbak-wal-fetch');
  const args = ['--env-file', envFile, '%f', '%p'];
  if (pgbakCommand.length === 2 && client && isExecutable(client) && /^[A-Za-z0-9_@%+=:,./-]+$/.test(node!))
    return [`PGBAK_NODE=${node}`, ...[client, ...args].map(shellWord)].join(' ');
  return [...pgbakCommand, 'wal-fetch', ...args].map(shellWord).join(' ');
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A word for /bin/sh: as is when safe, else single-quoted. */
function shellWord(w: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w)) return w;
  if (w.includes("'")) throw new UsageError(`cannot put ${w} into restore_command: it contains a single quote`);
  return `'${w}'`;
}

/** A postgresql.conf string value. */
function confString(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
