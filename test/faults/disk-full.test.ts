import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../src/storage/local-backend.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { createBucket, createDatabase, execFileAsync, sql, tempDir } from '../helpers/services.js';
import { jsonResult } from '../helpers/json-schemas.js';

/**
 * A real full file system: BACKUP_DIR is a 5 MiB tmpfs (the tests run as root). The dump of the
 * grown database (~12 MB uncompressed) cannot fit; the first, small backup does.
 */
const TMPFS_SIZE = '5m';

/** Files under a final backup name (not temp files, not the lock or run records). */
function finalFiles(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => !f.startsWith('.'))
        .sort()
    : [];
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Fill the file system holding `dir` to the last page with one file; returns its path. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(64 * 1024);
  try {
    for (let size = block.length; size >= 512; ) {
      try {
        writeSync(fd, block, 0, size);
      } catch {
        size = size / 2; // ENOSPC: finish the last pages with smaller writes
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

describe('a full disk under BACKUP_DIR', () => {
  const dir = tempDir('pgbak-diskfull-');
  const backups = join(dir, 'backups');
  let db: string;
  let mounted = false;

  beforeAll(async () => {
    mkdirSync(backups, { recursive: true });
    // A real small file system. LOG_FILE stays outside it (backupEnv puts it in dir/logs).
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'tmpfs', backups]);
    mounted = true;
    db = await createDatabase(
      'full',
      'CREATE TABLE t (id int PRIMARY KEY, payload text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100) g;',
    );
  });
  afterAll(async () => {
    if (mounted) await execFileAsync('umount', [backups]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a dump that does not fit: exit 6, the path and the free space, a hint; nothing half-made, the earlier backup intact', async () => {
    const env = backupEnv({
      database: db,
      dir,
      extra: { BACKUP_COMPRESSION: 'none', BACKUP_GLOBALS: 'false', BACKUP_ROW_COUNTS: 'false' },
    });
    const first = await runCli(['backup', '--json', '--no-prune'], { env });
    expect(first.code, first.stderr).toBe(0);
    const earlier = jsonResult(first.stdout) as { name: string; sha256: string };
    const before = finalFiles(backups);
    expect(before).toEqual(expect.arrayContaining([`${earlier.name}.dump`, `${earlier.name}.manifest.json`]));

    // ~12 MB of incompressible-looking rows: more than the 5 MiB file system holds.
    await sql(db, `INSERT INTO t SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(101, 100000) g`);
    await new Promise((r) => setTimeout(r, 1100)); // a new name for the second run
    const r = await runCli(['backup', '--no-prune'], { env });
    expect(r.code, r.stderr).toBe(6);
    const error = r.stderr.split('\n').find((l) => l.startsWith('pgbak: error: '));
    expect(error).toMatch(
      new RegExp(
        `^pgbak: error: no space left on device writing ${backups}/${db}_\\d{8}_\\d{6}\\.dump \\(free: [\\d.]+ (B|KiB|MiB) of 5\\.0 MiB\\)$`,
      ),
    );
    expect(r.stderr).not.toMatch(/internal error|bug in pgbak/);
    const hint = r.stderr.split('\n').find((l) => l.startsWith('hint: '));
    expect(hint).toMatch(/free space/);
    expect(hint).toMatch(/BACKUP_DIR/);
    expect(hint).toMatch(/RETENTION_DAYS/);

    // Nothing under a final name, no temp file; the earlier backup is byte for byte what its manifest says.
    expect(finalFiles(backups)).toEqual(before);
    expect(readdirSync(backups).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(sha256(join(backups, `${earlier.name}.dump`))).toBe(earlier.sha256);
    const verify = await runCli(['verify', earlier.name], { env });
    expect(verify.code, verify.stderr).toBe(0);
  });

  it('a 100 % full disk: exit 6 naming the file, no empty lock left, and the next run works once there is room', async () => {
    const env = backupEnv({
      database: db,
      dir,
      extra: { BACKUP_COMPRESSION: 'gzip:9', BACKUP_GLOBALS: 'false', BACKUP_ROW_COUNTS: 'false' },
    });
    const before = finalFiles(backups);
    const filler = fill(backups);
    const r = await runCli(['backup', '--no-prune'], { env });
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(
      new RegExp(`^pgbak: error: no space left on device writing ${backups}/\\S+ \\(free: [\\d.]+ (B|KiB) of 5\\.0 MiB\\)$`, 'm'),
    );
    expect(r.stderr).toMatch(/^hint: .*free space/m);
    expect(r.stderr).not.toMatch(/internal error|bug in pgbak/);
    expect(readdirSync(backups).filter((f) => f.endsWith('.lock') || f.includes('.tmp-'))).toEqual([]);
    expect(finalFiles(backups)).toEqual([...before, 'filler'].sort());

    rmSync(filler);
    // An empty lock, as a 100 % full disk left one before (created, never written), is taken over.
    writeFileSync(join(backups, `.pgbak-${db}.lock`), '');
    // With the database back to a size that fits, the next run takes the lock and succeeds.
    await sql(db, 'DELETE FROM t WHERE id > 100');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const next = await runCli(['backup', '--no-prune'], { env });
    expect(next.code, next.stderr).toBe(0);
    expect(existsSync(join(backups, `.pgbak-${db}.lock`))).toBe(false);
  });

  it('a LOG_FILE on a full disk (/dev/full) does not fail the backup: one warning on stderr, the backup is made', async () => {
    const other = tempDir();
    const env = { ...backupEnv({ database: db, dir: other, extra: { BACKUP_GLOBALS: 'false' } }), LOG_FILE: '/dev/full' };
    const r = await runCli(['backup', '--no-prune'], { env });
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('no space left on device writing /dev/full'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/WARN .*lines are missing from the log file/);
    expect(r.stdout).toMatch(/^backup ok: /);
    rmSync(other, { recursive: true, force: true });
  });

  it('only the small write (a manifest) fails: DiskFullError naming the file, with a hint, and nothing left', async () => {
    const filler = fill(backups);
    try {
      const local = new LocalBackend(backups);
      const body = Buffer.from(JSON.stringify({ format: 'pgbak-manifest', padding: 'x'.repeat(8192) }));
      const put = local.put('full_20240101_000000.manifest.json', Readable.from([body]), { contentLength: body.length });
      await expect(put).rejects.toMatchObject({
        code: 'disk-full',
        exitCode: 6,
        message: expect.stringMatching(
          new RegExp(`^no space left on device writing ${backups}/full_20240101_000000\\.manifest\\.json \\(free: `),
        ),
        hint: expect.stringMatching(/free space/),
      });
      expect(readdirSync(backups).filter((f) => f.includes('full_20240101_000000'))).toEqual([]);
    } finally {
      rmSync(filler);
    }
  });

  // zstd: the decompressor writes the spool file itself; gzip (pg_dump's): node writes what gpg outputs.
  it.each(['zstd:3', 'gzip:6'])(
    'a parallel restore whose spool file does not fit (%s + gpg): exit 6 naming it, nothing left, no target',
    async (compression) => {
      const bucket = await createBucket();
      const other = tempDir();
      const extra = { BACKUP_COMPRESSION: compression, BACKUP_GLOBALS: 'false', BACKUP_ROW_COUNTS: 'false' };
      const made = await runCli(['backup', '--json', '--no-prune'], {
        env: backupEnv({ database: db, dir: other, bucket, encrypt: true, extra }),
      });
      expect(made.code, made.stderr).toBe(0);
      const { name } = jsonResult(made.stdout) as { name: string };
      const target = `spool_${Date.now()}`;
      const env = backupEnv({ database: db, dir, bucket, encrypt: true, extra });
      const filler = fill(backups);
      try {
        const r = await runCli(['restore', name, '--from', 'remote', '--target', target, '--create', '--parallel', '2'], { env });
        expect(r.code, r.stderr).toBe(6);
        expect(r.stderr).toMatch(
          new RegExp(`^pgbak: error: no space left on device writing ${backups}/\\.pgbak-restore-\\w+/${name}\\.dump \\(free: `, 'm'),
        );
        expect(r.stderr).not.toMatch(/internal error|bug in pgbak/);
        expect(readdirSync(backups).filter((f) => f.startsWith('.pgbak-restore-'))).toEqual([]);
        expect(await sql('postgres', `SELECT count(*) FROM pg_database WHERE datname = '${target}'`)).toBe('0');
      } finally {
        rmSync(filler);
        rmSync(other, { recursive: true, force: true });
      }
    },
  );
});
