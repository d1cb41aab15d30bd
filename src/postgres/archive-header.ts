import { open } from 'node:fs/promises';
import { fsError, PgToolError } from '../errors/index.js';
import { childEnv } from '../pipeline/child-env.js';
import type { PgTool } from './pg-tools.js';
import { PgRestoreListTap } from './toc.js';
import { execChild } from '../pipeline/child-stage.js';

/** Tool runs in their own process group, killed on pgbak's exit (see child-stage.ts). */
const execFileAsync = execChild;

/**
 * The summary `pg_restore -l` prints before an archive's table of contents:
 * ```
 * ; Archive created at 2026-12-01 21:24:33 UTC
 * ;     dbname: shop
 * ;     Compression: 9            (pg_dump ≤ 15: the gzip level; 16+: gzip | lz4 | zstd | none)
 * ;     Format: CUSTOM
 * ;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)
 * ;     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)
 * ```
 */
export interface ArchiveHeader {
  readonly dbname: string | undefined;
  /** `CUSTOM`, `TAR`, `DIRECTORY` … as printed. */
  readonly format: string | undefined;
  /** The `Compression:` value as printed (`9`, `-1`, `0`, `gzip`, `zstd` …). */
  readonly compression: string | undefined;
  readonly createdAt: string | undefined;
  readonly serverVersion: string | undefined;
  readonly pgDumpVersion: string | undefined;
  /** Entries of the table of contents. */
  readonly tocEntries: number | undefined;
}

/** Parse the `;`-comment summary of `pg_restore -l` output. */
export function parseArchiveHeader(text: string): ArchiveHeader {
  const field = (name: string): string | undefined => {
    const m = new RegExp(`^;\\s+${name}:[ \\t]?(.*)$`, 'm').exec(text);
    return m ? m[1]!.trimEnd() : undefined;
  };
  const entries = field('TOC Entries');
  return {
    dbname: field('dbname'),
    format: field('Format'),
    compression: field('Compression'),
    createdAt: /^; Archive created at (.+)$/m.exec(text)?.[1]?.trim(),
    serverVersion: field('Dumped from database version'),
    pgDumpVersion: field('Dumped by pg_dump version'),
    tocEntries: entries === undefined ? undefined : Number(entries),
  };
}

/** How `pg_restore -l` ended: its output on success, else its error text. */
export type HeaderRead = { readonly ok: true; readonly header: ArchiveHeader } | { readonly ok: false; readonly error: string };

/** The last lines of a failed pg_restore's stderr, for a message. */
function tail(stderr: string): string {
  return stderr.trim().split('\n').slice(-2).join(' | ') || 'no output';
}

/** `pg_restore -l <file>`: the header of an archive on disk (seekable, read only as far as needed). */
export async function readArchiveHeader(tool: PgTool, file: string): Promise<HeaderRead> {
  try {
    const { stdout } = await execFileAsync(tool.path, ['-l', file], { maxBuffer: 256 * 1024 * 1024, env: childEnv() });
    return { ok: true, header: parseArchiveHeader(stdout) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: unknown };
    return { ok: false, error: e.code === 'ENOENT' ? `${tool.path} not found` : tail(String(e.stderr ?? e.message)) };
  }
}

/** The tap of a stream read once (a bucket object, a decrypted `.gpg`): its header too. */
export class ArchiveHeaderTap extends PgRestoreListTap {
  readonly result: Promise<HeaderRead> = this.output.then((r) => (r.ok ? { ok: true, header: parseArchiveHeader(r.text) } : r));
}

/**
 * The fixed start of a pg_dump archive (custom format; a tar archive's toc.dat starts the same):
 * `PGDMP`, the archive format version (major, minor, revision bytes: 1.14.0 from pg_dump 12–15,
 * 1.15.0 from 16, 1.16.0 from 17 and 18), the sizes of an int and of a file offset, the format.
 */
export interface ArchiveFormat {
  readonly major: number;
  readonly minor: number;
  readonly rev: number;
  /** `1.14` */
  readonly version: string;
  readonly intSize: number;
  readonly offSize: number;
  readonly format: 'custom' | 'tar' | 'directory' | 'unknown';
}

/** Bytes of the archive's head parseArchiveFormat needs. */
export const ARCHIVE_HEAD_BYTES = 11;

const FORMATS: Record<number, ArchiveFormat['format']> = { 1: 'custom', 3: 'tar', 5: 'directory' };

/** The format version of an archive from its first bytes; undefined when it is no pg_dump archive (no `PGDMP`). */
export function parseArchiveFormat(head: Uint8Array): ArchiveFormat | undefined {
  if (head.length < ARCHIVE_HEAD_BYTES || Buffer.from(head.subarray(0, 5)).toString('latin1') !== 'PGDMP') return undefined;
  const [major, minor, rev, intSize, offSize, format] = [...head.subarray(5, 11)] as [number, number, number, number, number, number];
  return { major, minor, rev, version: `${major}.${minor}`, intSize, offSize, format: FORMATS[format] ?? 'unknown' };
}

/**
 * The newest archive format (1.x) the pg_restore of a major version reads: what its pg_dump
 * writes (pg_restore reads every older one). Undefined for a major newer than this table: it
 * is not refused here (pg_restore itself then decides).
 */
export function newestFormatReadBy(pgRestoreMajor: number): number | undefined {
  if (pgRestoreMajor > 18) return undefined;
  if (pgRestoreMajor >= 17) return 16;
  if (pgRestoreMajor === 16) return 15;
  if (pgRestoreMajor >= 12) return 14;
  return 13; // 9.3 … 11 (1.13 since the minor releases of February 2018)
}

/** The oldest PostgreSQL major whose pg_restore reads archive format 1.`minor`; undefined when newer than any known. */
export function oldestMajorReading(minor: number): number | undefined {
  if (minor > 16) return undefined;
  if (minor === 16) return 17;
  if (minor === 15) return 16;
  if (minor === 14) return 12;
  return 11;
}

/**
 * Refuse, before anything is restored, an archive whose format is newer than `tool` (a
 * pg_restore) reads: pg_restore would stop with "unsupported version (1.16) in file header".
 */
export function requireReadableFormat(format: ArchiveFormat, tool: PgTool, what = 'the archive'): void {
  const newest = newestFormatReadBy(tool.major);
  if (format.major === 1 && (newest === undefined || format.minor <= newest)) return;
  throw newerArchiveError(format.version, tool, what, newest);
}

/** Which pg_dump writes archive format 1.`minor`. */
function writtenBy(minor: number): string {
  if (Number.isNaN(minor) || minor > 16) return 'a pg_dump newer than 18';
  if (minor === 16) return 'pg_dump 17 or newer';
  if (minor === 15) return 'pg_dump 16';
  if (minor === 14) return 'pg_dump 12 to 15';
  return 'pg_dump 11 or older';
}

function newerArchiveError(version: string, tool: PgTool, what: string, newest = newestFormatReadBy(tool.major)): PgToolError {
  const m = /^(\d+)\.(\d+)/.exec(version);
  const minor = m && m[1] === '1' ? Number(m[2]) : Number.NaN;
  const needed = Number.isNaN(minor) ? undefined : oldestMajorReading(minor);
  return new PgToolError(
    `${what} is archive format ${version} (written by ${writtenBy(minor)}), newer than ${tool.path} ${tool.version} can read` +
      (newest === undefined ? '' : ` (up to 1.${newest})`),
    {
      hint:
        needed === undefined
          ? 'install a newer PostgreSQL client, or point PG_DUMP_PATH at its bin directory'
          : `install postgresql-client-${needed} or newer, or point PG_DUMP_PATH at its bin directory`,
    },
  );
}

/**
 * The format of an archive file (its first bytes), refused with a PgToolError (exit 4) when
 * `tool` cannot read it. Undefined when the file is no pg_dump archive (pg_restore says why).
 */
export async function checkArchiveReadable(tool: PgTool, file: string, what?: string): Promise<ArchiveFormat | undefined> {
  let head: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      head = Buffer.alloc(ARCHIVE_HEAD_BYTES);
      const { bytesRead } = await fh.read(head, 0, ARCHIVE_HEAD_BYTES, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw fsError(err, 'read', file);
  }
  const format = parseArchiveFormat(head);
  if (format) requireReadableFormat(format, tool, what);
  return format;
}

/**
 * pg_restore's own words for an archive it is too old for (`unsupported version (1.16) in file
 * header`, printed before it connects) as the same PgToolError; undefined for any other output.
 */
export function unsupportedArchiveError(stderr: string, tool: PgTool, what?: string): PgToolError | undefined {
  const m = /unsupported version \((\d+\.\d+)\) in file header/.exec(stderr);
  return m ? newerArchiveError(m[1]!, tool, what ?? 'the archive') : undefined;
}
