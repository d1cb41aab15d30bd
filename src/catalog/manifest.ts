import { IntegrityError } from '../errors/index.js';
import type { CompressionMethod } from '../config/parsers.js';
import type { ServerRunRef } from '../model/server-run-ref.js';
import type { VerificationRecord } from '../model/verification-record.js';

export const MANIFEST_FORMAT = 'pgbak-manifest';
export const MANIFEST_VERSION = 1;

export interface StoredFile {
  /** Key relative to the backend root (same locally and in the bucket). */
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

export interface TableCount {
  readonly schema: string;
  readonly table: string;
  readonly rows: number;
}

/**
 * Written LAST, after every byte of the artifact is durable: a backup without a manifest is
 * incomplete and never treated as good.
 */
export interface Manifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly version: typeof MANIFEST_VERSION;
  /** `<db>_YYYYMMDD_HHMMSS` */
  readonly name: string;
  readonly job: string;
  readonly database: string;
  readonly host: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  /**
   * The server the database lives on. `systemIdentifier` (pg_control_system(), shared by a primary
   * and its physical replicas) tells two servers' databases of the same name apart in one prefix;
   * absent in manifests of pgbak 0.1 and when the server does not show it.
   */
  readonly server: {
    /** `server_version` as the server reports it (`13.23`, `15.18 (Debian 15.18-0+deb12u1)`). */
    readonly version: string;
    /** `server_version_num` (`130023`). */
    readonly versionNum: number;
    readonly systemIdentifier?: string | undefined;
  };
  /**
   * The pg_dump that wrote the archive (`15.18`), at least as new as the server. Its major is the
   * oldest pg_restore that reads the archive: restore and verify look for one at least as new.
   */
  readonly pgDump: { readonly version: string; readonly path: string };
  readonly tool: { readonly name: 'pgbak'; readonly version: string };
  readonly compression: {
    readonly method: CompressionMethod;
    readonly level: number;
    /** `pg_dump` (inside the archive) or `stream` (a .zst/.lz4 layer around it). */
    readonly by: 'pg_dump' | 'stream';
  };
  /** gpg: the GPG_RECIPIENT and its key's fingerprint; age: every AGE_RECIPIENTS key (`.age` artifacts). */
  readonly encryption:
    | null
    | { readonly method: 'gpg'; readonly recipient: string; readonly fingerprint: string }
    | { readonly method: 'age'; readonly recipients: readonly string[] };
  readonly artifact: StoredFile;
  /**
   * BACKUP_JOBS ≥ 2: the dump is pg_dump's directory format, each of its files stored as
   * `<name>.dir/<file>` and listed here (toc.dat first: it is also `artifact`); absent for a
   * single-file dump.
   */
  readonly directory?: { readonly jobs: number; readonly files: readonly StoredFile[] } | undefined;
  readonly globals: StoredFile | null;
  /**
   * Exact row counts taken in the same snapshot pg_dump used (`--snapshot`), so a restore
   * test can compare them one to one; null when BACKUP_ROW_COUNTS=false.
   */
  readonly tables: readonly TableCount[] | null;
  /**
   * STORAGE_OBJECT_LOCK: the bucket's copies of the artifact, the globals and this manifest were
   * stored under S3 Object Lock in this mode until this date (RETENTION_DAYS + a margin after the
   * start); absent when the backup was not locked. Prune leaves the bucket's copy until then.
   */
  readonly objectLock?: { readonly mode: 'governance' | 'compliance'; readonly retainUntil: string } | undefined;
  /** The id of the run that wrote the backup (its `.run.json` names the same id); absent before 0.2. */
  readonly runId?: string | undefined;
  /**
   * Set when `pgbak adopt` wrote this manifest for a dump pgbak did not make (the guide's own
   * script, a manual pg_dump): what was checked, and when. Server, pg_dump and compression fields
   * then come from the archive's header where it could be read.
   */
  readonly adopted?: { readonly at: string; readonly from: string; readonly note: string } | undefined;
  /** A backup of a whole-server run (BACKUP_DATABASES): the run, and the backup that holds its globals. */
  readonly serverRun?: ServerRunRef | undefined;
}

/** Verification record written next to a backup by `pgbak verify` (src/model/verification-record.ts). */
export type { VerificationRecord };

/** The bytes a backup's dump takes in one location: its artifact, or every file of a directory-format dump. */
export function dumpBytes(m: Pick<Manifest, 'artifact' | 'directory'>): number {
  return m.directory ? m.directory.files.reduce((n, f) => n + f.size, 0) : m.artifact.size;
}

/**
 * Where a backup is in a location, as results, logs and `list` name it: its artifact, or for a
 * directory-format dump (BACKUP_JOBS) its directory, with a trailing `/`.
 */
export function backupUrl(m: Pick<Manifest, 'artifact' | 'directory'>, urlOf: (key: string) => string): string {
  return m.directory ? `${urlOf(m.artifact.key.replace(/\/[^/]*$/, ''))}/` : urlOf(m.artifact.key);
}

export function serializeManifest(m: Manifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}

/** Parse and validate a manifest; throws IntegrityError naming what is wrong. */
export function parseManifest(text: string, source: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new IntegrityError(`manifest ${source} is not valid JSON: ${(err as Error).message}`);
  }
  const m = data as Partial<Manifest>;
  const problems: string[] = [];
  if (m.format !== MANIFEST_FORMAT) problems.push('format');
  if (m.version !== MANIFEST_VERSION) problems.push(`version ${String(m.version)}`);
  if (typeof m.name !== 'string') problems.push('name');
  if (typeof m.database !== 'string') problems.push('database');
  if (typeof m.startedAt !== 'string' || Number.isNaN(Date.parse(m.startedAt))) problems.push('startedAt');
  const a = m.artifact;
  if (!a || typeof a.key !== 'string' || typeof a.size !== 'number' || !/^[0-9a-f]{64}$/.test(String(a.sha256))) problems.push('artifact');
  const d = m.directory;
  if (
    d !== undefined &&
    (!Array.isArray(d.files) || d.files.some((f) => typeof f?.key !== 'string' || !/^[0-9a-f]{64}$/.test(String(f.sha256))))
  )
    problems.push('directory');
  if (problems.length) {
    throw new IntegrityError(`manifest ${source} is invalid (${problems.join(', ')})`, {
      hint: 'the backup it describes cannot be trusted; run `pgbak verify` on the others',
    });
  }
  return m as Manifest;
}
