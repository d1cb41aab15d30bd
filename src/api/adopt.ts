import { Readable } from 'node:stream';
import { manifestKey, parseKey } from '../catalog/backup-name.js';
import { listBackups, type CatalogEntry, type CopyInfo, type LocationName } from '../catalog/catalog.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, serializeManifest, type Manifest } from '../catalog/manifest.js';
import { filePrefixOf, type JobConfig } from '../config/job.js';
import type { CompressionMethod } from '../config/parsers.js';
import {
  abortCause,
  AppError,
  ConflictError,
  ExitCode,
  IntegrityError,
  InterruptedError,
  isAppError,
  NotFoundError,
} from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import type { ArchiveHeader } from '../postgres/archive-header.js';
import { findPgTool, type PgTool } from '../postgres/pg-tools.js';
import { openStorage, type JobStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';
import { closestNames, normalizeName, shownName } from '../catalog/find-backup.js';
import { readForeignCopy, type CheckedCopy } from './foreign-copy.js';
import { TOOL_VERSION } from '../version.js';

/**
 * `pgbak adopt`: take foreign dumps (named like a backup of the job, with neither a manifest nor a
 * run record anywhere — the guide's own script's, a manual `pg_dump -Fc`) into the catalog, so
 * they count toward retention from then on. Each copy is read once (size, sha256, and the
 * archive's header through `pg_restore -l`, decrypted first when it is a `.gpg`) and must be a
 * custom-format archive of the job's database; then a manifest marked `adopted` is written beside
 * it with a create-only put. The dump itself is never modified, moved or deleted.
 */

export interface AdoptOptions {
  readonly job: JobConfig;
  /** Only these locations (a CLI's --local/--remote); the job's storage when neither is given. */
  readonly local?: StorageBackend | undefined;
  readonly remote?: StorageBackend | undefined;
  /** The job's open storage, used when neither `local` nor `remote` is given; else opened (and released) here. */
  readonly storage?: JobStorage | undefined;
  /** Backup names (or file names of them) to adopt. */
  readonly names?: readonly string[] | undefined;
  /** Every foreign backup of the job (when no names are given). */
  readonly all?: boolean | undefined;
  /** Read and check everything, write nothing. */
  readonly dryRun?: boolean | undefined;
  readonly logger?: Logger | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly now?: Date | undefined;
}

/** One copy taken into the catalog (or, in a dry run, that would be). */
export interface AdoptedCopy {
  readonly name: string;
  readonly where: LocationName;
  readonly key: string;
  /** Path or s3:// URL of the dump. */
  readonly url: string;
  readonly size: number;
  readonly sha256: string;
  readonly encrypted: boolean;
  /** Where the manifest is (or would be) written. */
  readonly manifestUrl: string;
  readonly manifest: Manifest;
}

/** A copy (or a name) that was not adopted because something about it is wrong. */
export interface AdoptRefusal {
  readonly name: string;
  readonly where?: LocationName | undefined;
  readonly url?: string | undefined;
  readonly code: string;
  readonly message: string;
  readonly hint?: string | undefined;
  readonly exitCode: number;
}

/** A backup or copy left alone for a harmless reason (already pgbak's, nothing to adopt). */
export interface AdoptSkip {
  readonly name: string;
  readonly where?: LocationName | undefined;
  readonly reason: string;
}

export interface AdoptResult {
  readonly job: string;
  readonly database: string;
  readonly prefix: string;
  readonly dryRun: boolean;
  readonly adopted: readonly AdoptedCopy[];
  readonly refused: readonly AdoptRefusal[];
  readonly skipped: readonly AdoptSkip[];
  /** 0, else the exit code of the first refusal. */
  readonly exitCode: number;
}

const UNKNOWN = 'unknown (adopted)';

/** The note recorded in `adopted.note` about the time taken from the name. */
function timeNote(name: string, time: Date, header: ArchiveHeader): string {
  return (
    `time ${time.toISOString()} taken from the name ${name}, read as UTC as pgbak's own names are; ` +
    `the guide's script names files in the local time of the machine that made them, so on a machine not on UTC it is off by that machine's UTC offset` +
    (header.createdAt ? `; the archive header says it was created at ${header.createdAt}` : '')
  );
}

/** `15.18 (Debian …)` → 150018; `9.6.24` → 90624; 0 when unreadable. */
export function versionNumOf(version: string | undefined): number {
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(version ?? '');
  if (!m) return 0;
  const [major, minor, patch] = [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
  return major >= 10 ? major * 10000 + minor : major * 10000 + minor * 100 + patch;
}

/** `15.18 (Debian 15.18-0+deb12u1)` → `15.18`, as pgbak records a pg_dump's version. */
function shortVersion(version: string | undefined): string {
  return /^\d+(?:\.\d+)?/.exec(version ?? '')?.[0] ?? UNKNOWN;
}

/**
 * The compression of an archive as far as its header says: pg_dump ≤ 15 prints the gzip level
 * (`-1` is pg_dump's default, `0` none); 16+ prints the method only (level recorded as -1:
 * not in the archive). A `.zst` / `.lz4` layer around the archive is the stream's.
 */
export function compressionOf(header: ArchiveHeader, stream: 'zstd' | 'lz4' | undefined): Manifest['compression'] {
  if (stream) return { method: stream, level: -1, by: 'stream' };
  const c = header.compression?.trim() ?? '';
  if (/^-?\d+$/.test(c)) {
    const level = Number(c);
    return level === 0 ? { method: 'none', level: 0, by: 'pg_dump' } : { method: 'gzip', level, by: 'pg_dump' };
  }
  const method = (['gzip', 'zstd', 'lz4', 'none'] as const).find((m) => c.toLowerCase().startsWith(m));
  return { method: (method ?? 'gzip') satisfies CompressionMethod, level: method === 'none' ? 0 : -1, by: 'pg_dump' };
}

function manifestOf(job: JobConfig, entry: CatalogEntry, c: CheckedCopy, now: Date): Manifest {
  const parsed = parseKey(c.key);
  const time = entry.time;
  const compression = compressionOf(c.header, parsed?.streamCompression);
  const notes = [
    `adopted by pgbak ${TOOL_VERSION}: a ${c.encrypted ? 'gpg-encrypted ' : ''}custom-format archive of database ${c.header.dbname} (pg_restore -l), size and sha256 read from this copy`,
    timeNote(entry.name, time, c.header),
    `server and pg_dump versions and compression (${c.header.compression ?? 'not stated'}) from the archive header; the server's system identifier, the host, the globals and row counts are not known`,
    ...(c.encrypted
      ? [`encrypted to ${c.fingerprint ?? 'a key gpg could not name'} (from its public-key packet; the recipient's name is not recorded)`]
      : []),
  ];
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    name: entry.name,
    job: job.name,
    database: job.database,
    host: UNKNOWN,
    startedAt: time.toISOString(),
    finishedAt: time.toISOString(),
    durationMs: 0,
    server: { version: c.header.serverVersion ?? UNKNOWN, versionNum: versionNumOf(c.header.serverVersion) },
    pgDump: { version: shortVersion(c.header.pgDumpVersion), path: UNKNOWN },
    tool: { name: 'pgbak', version: TOOL_VERSION },
    compression,
    encryption: c.encrypted ? { method: 'gpg', recipient: UNKNOWN, fingerprint: c.fingerprint ?? 'unknown' } : null,
    artifact: { key: c.key, size: c.size, sha256: c.sha256 },
    globals: null,
    tables: null,
    adopted: { at: now.toISOString(), from: c.key, note: notes.join('. ') },
  };
}

function refusalOf(name: string, err: AppError, where?: LocationName, url?: string): AdoptRefusal {
  return { name, where, url, code: err.code, message: err.message, hint: err.hint, exitCode: err.exitCode };
}

/** Why an entry that is not foreign is left alone. */
function notForeign(entry: CatalogEntry): string {
  const owned = (['local', 'remote'] as const).filter((w) => entry.locations[w]?.manifest || entry.locations[w]?.run);
  const what = owned.map((w) => `${entry.locations[w]!.manifest ? 'a manifest' : 'a run record'} in ${w}`).join(', ');
  return `not foreign: already pgbak's (${what}; state ${entry.state}); nothing to adopt`;
}

/** The foreign copies of an entry that hold a dump, and what stops any of them from being adopted. */
function copiesOf(entry: CatalogEntry, backends: Partial<Record<LocationName, StorageBackend>>) {
  const copies: { where: LocationName; backend: StorageBackend; copy: CopyInfo }[] = [];
  const refused: AdoptRefusal[] = [];
  const skipped: AdoptSkip[] = [];
  for (const where of ['local', 'remote'] as const) {
    const copy = entry.locations[where];
    const backend = backends[where];
    if (!copy || !backend) continue;
    if (!copy.artifact) {
      skipped.push({
        name: entry.name,
        where,
        reason: `no dump in ${where} (only ${
          copy.others
            .map((o) => o.key)
            .concat(copy.globals ? [copy.globals.key] : [])
            .join(', ') || 'other files'
        })`,
      });
      continue;
    }
    const extra = [...copy.others, ...(copy.globals ? [copy.globals] : [])];
    if (extra.length) {
      // The manifest names one artifact; retention would delete the rest with it, unchecked.
      refused.push(
        refusalOf(
          entry.name,
          new AppError(
            'adopt-ambiguous',
            `${backend.urlOf(copy.artifact.key)} has other files under the same name (${extra.map((o) => o.key).join(', ')}): a backup has one dump`,
            {
              exitCode: ExitCode.usage,
              hint: 'move the one(s) you do not want pgbak to manage out of the directory or prefix (retention would delete them with the backup), then run `pgbak adopt` again; nothing was written',
            },
          ),
          where,
          backend.urlOf(copy.artifact.key),
        ),
      );
      continue;
    }
    copies.push({ where, backend, copy });
  }
  return { copies, refused, skipped };
}

/**
 * Adopt the job's foreign dumps (`names`, or every one with `all`). A refusal of one copy
 * (not an archive, another database, unreadable, two different files under one name) is
 * reported in the result and the other backups are still processed; a backup with a refused
 * copy is not adopted in any location, so pgbak never claims the refused file as its own.
 * Listing failures, a missing pg_restore and a stop by a signal are thrown.
 */
export async function adopt(options: AdoptOptions): Promise<AdoptResult> {
  const { job } = options;
  const log = (options.logger ?? silentLogger).child({ job: job.name, database: job.database });
  const now = options.now ?? new Date();
  const dryRun = Boolean(options.dryRun);
  const chosen = options.local !== undefined || options.remote !== undefined;
  await using storage = chosen ? undefined : openStorage(job, { signal: options.signal, shared: options.storage });
  const local = chosen ? options.local : storage?.local;
  const remote = chosen ? options.remote : storage?.remote;
  const backends: Partial<Record<LocationName, StorageBackend>> = {};
  if (local) backends.local = local;
  if (remote) backends.remote = remote;
  const adopted: AdoptedCopy[] = [];
  const refused: AdoptRefusal[] = [];
  const skipped: AdoptSkip[] = [];

  const entries = await listBackups({ local, remote, prefix: job.filePrefix });
  const targets: CatalogEntry[] = [];
  if (options.names?.length) {
    for (const input of options.names) {
      const name = normalizeName(input);
      const entry = entries.find((e) => e.name === name);
      if (entry) {
        if (entry.state === 'foreign') {
          if (!targets.includes(entry)) targets.push(entry);
        } else skipped.push({ name, reason: notForeign(entry) });
        continue;
      }
      const prefix = parseKey(`${name}.dump`)?.prefix;
      const err =
        prefix !== undefined && prefix !== job.filePrefix
          ? new AppError(
              'adopt-other-prefix',
              `${shownName(input)} is not named like a backup of ${job.database} (its prefix is ${prefix}, this job's is ${job.filePrefix})`,
              {
                exitCode: ExitCode.usage,
                hint: `adopt it with the job whose database it is (--job), or rename it to ${job.filePrefix}_YYYYMMDD_HHMMSS.dump if it really is a dump of ${job.database}`,
              },
            )
          : new NotFoundError(
              `no file named ${shownName(input)} of ${job.database} in ${Object.values(backends)
                .map((b) => b.location)
                .join(' and ')}${
                entries.length
                  ? `; closest: ${closestNames(
                      name,
                      entries.map((e) => e.name),
                    ).join(', ')}`
                  : ''
              }`,
              { hint: '`pgbak list` shows every backup; foreign files are those in state foreign' },
            );
      refused.push(refusalOf(name, err));
    }
  } else if (options.all) {
    targets.push(...entries.filter((e) => e.state === 'foreign').reverse()); // oldest first
  }

  let tool: Promise<PgTool> | undefined;
  const pgRestore = () => (tool ??= findPgTool('pg_restore', 0, job.pgTools.pgDumpPath));

  for (const entry of targets) {
    if (options.signal?.aborted) throw abortCause(options.signal);
    const found = copiesOf(entry, backends);
    skipped.push(...found.skipped);
    const checked: CheckedCopy[] = [];
    const refusedHere: AdoptRefusal[] = [...found.refused];
    for (const { where, backend, copy } of found.copies) {
      const art = copy.artifact!;
      try {
        log.info(`reading ${backend.urlOf(art.key)}`, { backup: entry.name, location: where });
        const c = await readForeignCopy({ where, backend, key: art.key, listedSize: art.size, tool: pgRestore, signal: options.signal });
        if (c.header.dbname !== job.database) {
          throw new AppError(
            'adopt-other-database',
            `${backend.urlOf(art.key)} is a dump of database "${c.header.dbname ?? '?'}", not of "${job.database}" (this job's DATABASE_URL)`,
            {
              exitCode: ExitCode.usage,
              hint: `nothing was written and the file stays foreign (retention keeps it); ${c.header.dbname === undefined ? 'move it out of the way' : `rename it to ${filePrefixOf(c.header.dbname)}_${entry.name.slice(-15)}${c.encrypted ? '.dump.gpg' : '.dump'} and adopt it with that database's job, or move it out of the way`}`,
            },
          );
        }
        checked.push(c);
      } catch (err) {
        if (err instanceof InterruptedError || options.signal?.aborted || (isAppError(err) && err.code === 'pg-tool-missing')) throw err;
        if (!isAppError(err)) throw err;
        refusedHere.push(refusalOf(entry.name, err, where, backend.urlOf(art.key)));
      }
    }
    const [a, b] = checked;
    if (a && b && (a.sha256 !== b.sha256 || a.size !== b.size)) {
      refusedHere.push(
        refusalOf(
          entry.name,
          new IntegrityError(
            `the local and bucket copies of ${entry.name} differ (${a.key} ${a.size} bytes sha256 ${a.sha256.slice(0, 12)}…, ${b.key} ${b.size} bytes sha256 ${b.sha256.slice(0, 12)}…)`,
            {
              hint: 'two different dumps under one name: keep the one you want (move the other out of the way), then run `pgbak adopt` again; nothing was written',
            },
          ),
        ),
      );
    }
    if (refusedHere.length) {
      refused.push(...refusedHere);
      for (const c of checked) {
        skipped.push({
          name: entry.name,
          where: c.where,
          reason: `not adopted although it checks out: the backup's other copy was refused, and adopting this one would make pgbak treat that copy as its own`,
        });
      }
      continue;
    }
    for (const c of checked) {
      const manifest = manifestOf(job, entry, c, now);
      const key = manifestKey(entry.name);
      const done: AdoptedCopy = {
        name: entry.name,
        where: c.where,
        key: c.key,
        url: c.backend.urlOf(c.key),
        size: c.size,
        sha256: c.sha256,
        encrypted: c.encrypted,
        manifestUrl: c.backend.urlOf(key),
        manifest,
      };
      if (dryRun) {
        adopted.push(done);
        continue;
      }
      const body = Buffer.from(serializeManifest(manifest));
      try {
        await c.backend.put(key, Readable.from([body]), {
          contentLength: body.length,
          contentType: 'application/json',
          ifNoneMatch: true,
          ...(options.signal ? { signal: options.signal } : {}),
        });
        adopted.push(done);
        log.info(`adopted ${entry.name}`, {
          backup: entry.name,
          location: c.where,
          bytes: c.size,
          sha256: c.sha256,
          manifest: done.manifestUrl,
        });
      } catch (err) {
        if (options.signal?.aborted) throw abortCause(options.signal);
        if (err instanceof ConflictError) {
          skipped.push({
            name: entry.name,
            where: c.where,
            reason: `a manifest appeared at ${done.manifestUrl} while adopt ran (another adopt?): left as it is`,
          });
          continue;
        }
        if (!isAppError(err)) throw err;
        refused.push(refusalOf(entry.name, err, c.where, done.manifestUrl));
      }
    }
  }
  return {
    job: job.name,
    database: job.database,
    prefix: job.filePrefix,
    dryRun,
    adopted,
    refused,
    skipped,
    exitCode: refused[0]?.exitCode ?? ExitCode.ok,
  };
}
