import { describe, expect, it } from 'vitest';
import { compressionOf, versionNumOf } from '../../src/api/adopt.js';
import { parseArchiveHeader } from '../../src/postgres/archive-header.js';

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
