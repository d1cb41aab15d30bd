import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compressionOf, versionNumOf } from '../../src/api/adopt.js';
import { ExitCode, PgToolError } from '../../src/errors/index.js';
import {
  checkArchiveReadable,
  newestFormatReadBy,
  parseArchiveFormat,
  parseArchiveHeader,
  requireReadableFormat,
  unsupportedArchiveError,
} from '../../src/postgres/archive-header.js';
import type { PgTool } from '../../src/postgres/pg-tools.js';
import { tempDir } from '../helpers/services.js';

const header = (compression: string) => `;
; Archive created at 2026-12-01 21:24:33 UTC
;     dbname: shop archive
;     TOC Entries: 6
;     Compression: ${compression}
;     Dump Version: 1.14-0
;     Format: CUSTOM
;     Integer: 4 bytes
;     Offset: 8 bytes
;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)
;     Dumped by pg_dump version: 16.4
;
;
; Selected TOC Entries:
;
214; 1259 16385 TABLE public t postgres
`;

describe('the archive header that pgbak adopt reads (pg_restore -l)', () => {
  it('parses the summary lines', () => {
    expect(parseArchiveHeader(header('9'))).toEqual({
      dbname: 'shop archive',
      format: 'CUSTOM',
      compression: '9',
      createdAt: '2026-12-01 21:24:33 UTC',
      serverVersion: '15.18 (Debian 15.18-0+deb12u1)',
      pgDumpVersion: '16.4',
      tocEntries: 6,
    });
  });

  it('reads compression as pg_dump ≤ 15 (a gzip level) and 16+ (a method) print it', () => {
    expect(compressionOf(parseArchiveHeader(header('9')), undefined)).toEqual({ method: 'gzip', level: 9, by: 'pg_dump' });
    expect(compressionOf(parseArchiveHeader(header('-1')), undefined)).toEqual({ method: 'gzip', level: -1, by: 'pg_dump' });
    expect(compressionOf(parseArchiveHeader(header('0')), undefined)).toEqual({ method: 'none', level: 0, by: 'pg_dump' });
    expect(compressionOf(parseArchiveHeader(header('zstd')), undefined)).toEqual({ method: 'zstd', level: -1, by: 'pg_dump' });
    expect(compressionOf(parseArchiveHeader(header('none')), undefined)).toEqual({ method: 'none', level: 0, by: 'pg_dump' });
    expect(compressionOf(parseArchiveHeader(header('0')), 'zstd')).toEqual({ method: 'zstd', level: -1, by: 'stream' });
  });

  it('turns server versions into server_version_num', () => {
    expect(versionNumOf('15.18 (Debian 15.18-0+deb12u1)')).toBe(150018);
    expect(versionNumOf('9.6.24')).toBe(90624);
    expect(versionNumOf(undefined)).toBe(0);
  });
});

/** The first bytes of a custom-format archive: PGDMP, format 1.minor.0, int 4, offset 8, custom (1), then more. */
const head = (minor: number, major = 1) => Buffer.from([0x50, 0x47, 0x44, 0x4d, 0x50, major, minor, 0, 4, 8, 1, 0, 9, 0, 0, 0]);
const pgRestore = (major: number): PgTool => ({
  name: 'pg_restore',
  path: `/usr/lib/postgresql/${major}/bin/pg_restore`,
  version: `${major}.3`,
  major,
});

describe('the archive format version in the first bytes of a dump', () => {
  it('parses PGDMP, the format version, the int and offset sizes and the format', () => {
    expect(parseArchiveFormat(head(14))).toEqual({
      major: 1,
      minor: 14,
      rev: 0,
      version: '1.14',
      intSize: 4,
      offSize: 8,
      format: 'custom',
    });
    expect(parseArchiveFormat(Buffer.from([...head(16).subarray(0, 10), 3]))?.format).toBe('tar');
    expect(parseArchiveFormat(Buffer.from('-- PostgreSQL database dump\n'))).toBeUndefined();
    expect(parseArchiveFormat(head(14).subarray(0, 10))).toBeUndefined();
  });

  it('knows which format each pg_restore reads: 1.14 up to 15, 1.15 in 16, 1.16 in 17 and 18, no limit past what it knows', () => {
    expect([12, 13, 14, 15, 16, 17, 18].map(newestFormatReadBy)).toEqual([14, 14, 14, 14, 15, 16, 16]);
    expect(newestFormatReadBy(19)).toBeUndefined();
  });

  it('accepts every format a pg_restore reads and refuses a newer one with exit 4, what wrote it, and the client to install', () => {
    for (const [minor, major] of [
      [14, 15],
      [13, 15],
      [15, 16],
      [14, 17],
      [16, 18],
      [17, 19],
    ] as const) {
      expect(() => requireReadableFormat(parseArchiveFormat(head(minor))!, pgRestore(major))).not.toThrow();
    }
    const refused = (minor: number, major: number, fmt = 1) => {
      try {
        requireReadableFormat(parseArchiveFormat(head(minor, fmt))!, pgRestore(major), 'backup shop_1');
      } catch (err) {
        return err as PgToolError;
      }
      throw new Error('not refused');
    };
    const e = refused(16, 15);
    expect(e).toBeInstanceOf(PgToolError);
    expect(e.exitCode).toBe(ExitCode.pgDumpMissing);
    expect(e.message).toBe(
      'backup shop_1 is archive format 1.16 (written by pg_dump 17 or newer), newer than /usr/lib/postgresql/15/bin/pg_restore 15.3 can read (up to 1.14)',
    );
    expect(e.hint).toBe('install postgresql-client-17 or newer, or point PG_DUMP_PATH at its bin directory');
    expect(refused(15, 14).message).toMatch(/format 1\.15 \(written by pg_dump 16\)/);
    expect(refused(15, 14).hint).toMatch(/^install postgresql-client-16 or newer/);
    expect(refused(16, 16).hint).toMatch(/^install postgresql-client-17 or newer/);
    // A format newer than any this table knows: refused by an 18, with no made-up version to install.
    expect(refused(17, 18).message).toMatch(/format 1\.17 \(written by a pg_dump newer than 18\)/);
    expect(refused(17, 18).hint).toBe('install a newer PostgreSQL client, or point PG_DUMP_PATH at its bin directory');
    expect(refused(0, 17, 2).message).toMatch(/format 2\.0 /);
  });

  it('reads the head of an archive file; a file that is no archive is left to pg_restore', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'new.dump'), head(16));
    writeFileSync(join(dir, 'old.dump'), head(14));
    writeFileSync(join(dir, 'plain.sql'), 'SELECT 1;\n');
    await expect(checkArchiveReadable(pgRestore(15), join(dir, 'new.dump'))).rejects.toThrow(/the archive is archive format 1\.16/);
    expect(await checkArchiveReadable(pgRestore(17), join(dir, 'new.dump'))).toMatchObject({ version: '1.16' });
    expect(await checkArchiveReadable(pgRestore(15), join(dir, 'old.dump'))).toMatchObject({ version: '1.14' });
    expect(await checkArchiveReadable(pgRestore(15), join(dir, 'plain.sql'))).toBeUndefined();
    await expect(checkArchiveReadable(pgRestore(15), join(dir, 'missing.dump'))).rejects.toThrow(/cannot read .*missing\.dump/);
  });

  it("turns pg_restore's own refusal (a streamed archive) into the same error", () => {
    const e = unsupportedArchiveError('pg_restore: error: unsupported version (1.16) in file header\n', pgRestore(15));
    expect(e?.exitCode).toBe(ExitCode.pgDumpMissing);
    expect(e?.message).toMatch(/^the archive is archive format 1\.16 \(written by pg_dump 17 or newer\)/);
    expect(unsupportedArchiveError('pg_restore: error: could not read input file: end of file', pgRestore(15))).toBeUndefined();
  });
});
