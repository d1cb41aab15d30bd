import { describe, expect, it } from 'vitest';
import { closestNames, normalizeName } from '../../src/catalog/find-backup.js';
import { resolveTargetUrl } from '../../src/api/restore.js';
import { scratchName } from '../../src/api/restore-test.js';
import { targetOf } from '../../src/cli/commands/restore.js';
import { UsageError } from '../../src/errors/index.js';
import { filterGlobals, maskPasswords } from '../../src/postgres/globals.js';
import { parseToc } from '../../src/postgres/toc.js';

const TOC = `;
; Archive created at 2026-11-28 18:04:44 UTC
;     dbname: src
;
; Selected TOC Entries:
;
6; 2615 16393 SCHEMA - DATA postgres
217; 1259 16397 SEQUENCE public sq postgres
215; 1259 16386 TABLE public t ownr
3360; 0 0 COMMENT public TABLE t ownr
216; 1259 16394 TABLE DATA we ird postgres
3351; 0 16386 TABLE DATA public t ownr
3352; 0 16394 TABLE DATA DATA we ird postgres
3207; 2606 16392 CONSTRAINT public t t_pkey ownr
`;

describe('parseToc', () => {
  it('counts entries and tells TABLE from TABLE DATA by the catalog oid, even in a schema called DATA', () => {
    expect(parseToc(TOC)).toEqual({ entries: 8, tables: ['public t', 'DATA we ird'] });
  });
});

const GLOBALS = `--
-- Roles
--

CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi';
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:x$y:z';
CREATE ROLE "Mixed ""Case""";
ALTER ROLE "Mixed ""Case""" WITH NOLOGIN;
COMMENT ON ROLE postgres IS 'the boss';
GRANT app TO "Mixed ""Case""" GRANTED BY postgres;
`;

describe('filterGlobals', () => {
  it('keeps statements of missing roles and drops every statement about an existing one', () => {
    const f = filterGlobals(GLOBALS, new Set(['postgres', 'Mixed "Case"']));
    expect(f.created).toEqual(['app']);
    expect(f.existing.sort()).toEqual(['Mixed "Case"', 'postgres']);
    expect(f.sql).toContain('CREATE ROLE app;');
    expect(f.sql).toContain('ALTER ROLE app WITH NOSUPERUSER');
    expect(f.sql).not.toMatch(/ROLE postgres|ROLE "Mixed/);
    expect(f.sql).toContain('GRANT app TO "Mixed ""Case""" GRANTED BY postgres;');
  });

  it('masks password hashes in psql messages', () => {
    expect(
      maskPasswords(`ERROR: syntax error at or near "PASSWORD" LINE 1: ALTER ROLE x PASSWORD 'SCRAM-SHA-256$4096:a$b:c'`),
    ).not.toContain('SCRAM');
    expect(maskPasswords("ALTER ROLE x PASSWORD 'md5" + 'a'.repeat(32) + "'")).toBe("ALTER ROLE x PASSWORD '***'");
  });
});

describe('backup names', () => {
  it('accepts a backup name, a file name or a path', () => {
    expect(normalizeName('shop_20240101_120000')).toBe('shop_20240101_120000');
    expect(normalizeName('/var/backups/db/shop_20240101_120000.dump.gpg')).toBe('shop_20240101_120000');
    expect(normalizeName('shop_20240101_120000.manifest.json')).toBe('shop_20240101_120000');
  });

  it('closestNames orders by edit distance', () => {
    const names = ['shop_20240101_120000', 'shop_20240102_120000', 'blog_20240101_120000', 'shop_20230101_000000'];
    expect(closestNames('shop_20240101_120001', names, 2)).toEqual(['shop_20240101_120000', 'shop_20240102_120000']);
  });

  it('scratch databases fit the 63-byte identifier limit', () => {
    const n = scratchName(`${'x'.repeat(80)}_20240101_120000`);
    expect(n.length).toBeLessThanOrEqual(63);
    expect(n).toMatch(/^pgbak_verify_x+_[0-9a-f]{8}$/);
  });
});

describe('restore targets', () => {
  const job = { databaseUrl: 'postgresql://app:s3cret@db.example:5433/shop?sslmode=require' };

  it("a bare name is a database on the job's server", () => {
    expect(resolveTargetUrl(job, 'shop_copy')).toBe('postgresql://app:s3cret@db.example:5433/shop_copy?sslmode=require');
  });

  it("a URL without password borrows the job's only for the same user, host and port", () => {
    expect(resolveTargetUrl(job, 'postgresql://app@db.example:5433/x')).toBe('postgresql://app:s3cret@db.example:5433/x');
    expect(resolveTargetUrl(job, 'postgresql://db.example:5433/x')).toBe('postgresql://app:s3cret@db.example:5433/x');
    expect(resolveTargetUrl(job, 'postgresql://other@db.example:5433/x')).toBe('postgresql://other@db.example:5433/x');
    expect(resolveTargetUrl(job, 'postgresql://app@elsewhere:5433/x')).toBe('postgresql://app@elsewhere:5433/x');
    expect(() => resolveTargetUrl(job, 'postgresql://app@db.example:5433/')).toThrow(UsageError);
  });

  it('refuses a password on the command line, takes one from --target-env', () => {
    expect(() => targetOf({ target: 'postgresql://app:pw@h/x' })).toThrow(/refused on the command line/);
    expect(() => targetOf({ target: 'postgresql://app@h/x?password=pw' })).toThrow(/refused on the command line/);
    expect(targetOf({ targetEnv: 'T' }, { T: 'postgresql://app:pw@h/x' })).toBe('postgresql://app:pw@h/x');
    expect(() => targetOf({ targetEnv: 'NOPE' }, {})).toThrow(/not set/);
    expect(() => targetOf({})).toThrow(/--target is required/);
    // restore --all-databases names its own option.
    expect(() => targetOf({}, {}, true)).toThrow(
      /--all-databases needs the server to restore into: --target-server URL or --target-env VAR/,
    );
    expect(() => targetOf({ target: 'postgresql://app:pw@h/postgres' }, {}, true)).toThrow(
      /a --target-server URL with a password is refused/,
    );
  });
});
