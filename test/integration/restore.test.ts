import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { awsPut, databaseExists, flipByte, richSql, snapshot, truncateBy } from '../helpers/restore-fixtures.js';
import { createBucket, createDatabase, execFileAsync, pgUrl, services, sql, tempDir, uniqueId } from '../helpers/services.js';
import { jsonResult } from '../helpers/json-schemas.js';

interface Backup {
  name: string;
  dir: string;
  env: NodeJS.ProcessEnv;
}

async function backupWith(
  db: string,
  bucket: string | undefined,
  opts: { encrypt?: boolean; prefix?: string; compression?: string },
): Promise<Backup> {
  const dir = tempDir();
  const extra = {
    ...(opts.prefix ? { STORAGE_PREFIX: opts.prefix } : {}),
    ...(opts.compression ? { BACKUP_COMPRESSION: opts.compression } : {}),
  };
  const env = backupEnv({ database: db, dir, bucket, encrypt: opts.encrypt, extra });
  const r = await runCli(['backup', '--json', '--no-prune'], { env });
  expect(r.code, r.stderr).toBe(0);
  return { name: jsonResult(r.stdout).name as string, dir, env };
}

const newName = (p = 'restored') => `${p}_${uniqueId()}`;

async function restoreJson(args: string[], env: NodeJS.ProcessEnv) {
  const r = await runCli(['restore', ...args, '--json'], { env });
  expect(r.code, r.stderr).toBe(0);
  return jsonResult(r.stdout);
}

/** Restore a plain archive with plain pg_restore (the reference the CLI is compared against). */
async function pgRestoreFile(file: string, db: string): Promise<void> {
  const s = services();
  await execFileAsync(
    'pg_restore',
    [`--host=${s.pg.host}`, `--port=${s.pg.port}`, `--username=${s.pg.user}`, `--dbname=${db}`, '--clean', '--if-exists', file],
    {
      env: { ...process.env, PGPASSWORD: s.pg.password },
    },
  );
}

describe('pgbak restore', () => {
  let db: string;
  let bucket: string;
  let plain: Backup;
  let enc: Backup;
  let expected: Awaited<ReturnType<typeof snapshot>>;

  beforeAll(async () => {
    db = await createDatabase('shop', richSql(`owner_${uniqueId()}`));
    bucket = await createBucket();
    [plain, enc] = await Promise.all([
      backupWith(db, bucket, { prefix: 'plain/' }),
      backupWith(db, bucket, { encrypt: true, prefix: 'enc/' }),
    ]);
    expected = await snapshot(db);
  });

  it('restores a local backup into a new database exactly, and reports the RTO', async () => {
    const target = newName();
    const r = await restoreJson([plain.name, '--target', target, '--create'], plain.env);
    expect(r).toMatchObject({
      name: plain.name,
      database: db,
      mode: 'file',
      parallel: 1,
      target: { database: target, created: true },
      locations: ['local'],
    });
    expect(r.objects.total).toBeGreaterThan(20);
    expect(r.objects.restored).toBe(r.objects.total);
    expect(r.durationMs).toBeGreaterThan(0);
    expect(r.durationMs).toBeGreaterThanOrEqual(r.restoreMs);
    expect(r.target.url).not.toContain(services().pg.password);
    expect(await snapshot(target)).toEqual(expected);
    const log = readFileSync(join(plain.dir, 'logs', 'backup-db.log'), 'utf8');
    expect(log).toMatch(new RegExp(`restore finished .*backup=${plain.name}.* rto=\\d+\\.\\ds`));
    expect(log).not.toContain(services().pg.password);
  });

  it('restores an encrypted backup with --parallel 2 through a spool file it removes afterwards', async () => {
    const target = newName();
    const run = await runCli(['restore', '--latest', '--target', target, '--create', '--parallel', '2', '--json'], { env: enc.env });
    expect(run.code, run.stderr).toBe(0);
    expect(jsonResult(run.stdout)).toMatchObject({ name: enc.name, mode: 'spool', parallel: 2, singleTransaction: false });
    expect(await snapshot(target)).toEqual(expected);
    const spool = /spooling the archive for a parallel restore .*file=(\S+)/.exec(run.stderr)?.[1];
    expect(spool?.startsWith(join(enc.dir, 'backups', '.pgbak-restore-'))).toBe(true);
    expect(existsSync(spool!)).toBe(false);
    expect(readdirSync(join(enc.dir, 'backups')).filter((f) => f.startsWith('.pgbak-restore-'))).toEqual([]);
  });

  it('streams an encrypted backup from the bucket into pg_restore in one transaction', async () => {
    const target = newName();
    const r = await restoreJson([enc.name, '--from', 'remote', '--target', target, '--create'], enc.env);
    expect(r).toMatchObject({
      mode: 'stream',
      singleTransaction: true,
      locations: ['remote'],
      paths: [`s3://${bucket}/enc/${enc.name}.dump.gpg`],
    });
    expect(await snapshot(target)).toEqual(expected);
  });

  it('restores a backup from the bucket with --parallel 2, and a target given as a URL', async () => {
    const target = newName();
    await sql('postgres', `CREATE DATABASE ${target}`);
    const s = services();
    // No password in the URL: it is borrowed from DATABASE_URL (same user, host and port).
    const url = `postgresql://${s.pg.user}@${s.pg.host}:${s.pg.port}/${target}`;
    const r = await restoreJson([plain.name, '--from', 'remote', '--target', url, '--parallel', '2'], plain.env);
    expect(r).toMatchObject({ mode: 'spool', locations: ['remote'], target: { created: false, replacedObjects: 0 } });
    expect(await snapshot(target)).toEqual(expected);
  });

  it('refuses a non-empty target without --yes, then replaces its objects with --yes', async () => {
    const target = newName();
    await sql('postgres', `CREATE DATABASE ${target}`);
    await pgRestoreFile(join(plain.dir, 'backups', `${plain.name}.dump`), target);
    await sql(
      target,
      `DELETE FROM sales.orders WHERE id > 100; UPDATE sales.customers SET name = 'changed'; SELECT setval('sales.invoice_seq', 5)`,
    );
    const before = await snapshot(target);
    expect(before).not.toEqual(expected);

    const refused = await runCli(['restore', plain.name, '--target', target], { env: plain.env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/target database .* is not empty \(\d+ objects\)/);
    expect(refused.stderr).toContain('--yes');
    expect(await snapshot(target)).toEqual(before);

    const r = await restoreJson([plain.name, '--target', target, '--yes'], plain.env);
    expect(r.target.replacedObjects).toBeGreaterThan(0);
    expect(await snapshot(target)).toEqual(expected);
  });

  it('an unknown name fails with exit 10 and lists the closest names', async () => {
    const wrong = plain.name.slice(0, -1) + (plain.name.endsWith('9') ? '0' : '9');
    const r = await runCli(['restore', wrong, '--target', newName(), '--create'], { env: plain.env });
    expect(r.code).toBe(10);
    expect(r.stderr).toContain(`no backup named ${wrong}`);
    expect(r.stderr).toContain(`closest: ${plain.name}`);
  });

  it('without the secret key: a clear error before the target is touched', async () => {
    const emptyHome = tempDir('pgbak-gpg-');
    const target = newName();
    const r = await runCli(['restore', enc.name, '--target', target, '--create'], { env: { ...enc.env, GNUPGHOME: emptyHome } });
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/secret key .* is not in the keyring/);
    expect(r.stderr).toContain('gpg --import');
    expect(await databaseExists(target)).toBe(false);

    // A keyring gpg cannot use is said to be one, not a key to import.
    const missingHome = join(tempDir('pgbak-gpg-'), 'missing');
    const broken = await runCli(['restore', enc.name, '--target', target, '--create'], { env: { ...enc.env, GNUPGHOME: missingHome } });
    expect(broken.code).toBe(8);
    expect(broken.stderr).toMatch(
      /^pgbak: error: gpg --list-secret-keys [0-9A-F]{40} failed: Fatal: .*missing: directory does not exist!$/m,
    );
    expect(broken.stderr).not.toMatch(/is not in the keyring|gpg --import/);
    expect(broken.stderr).toContain(`hint: check the keyring in GNUPGHOME=${missingHome}`);
    expect(await databaseExists(target)).toBe(false);
  });

  it('refuses a target URL with a password on the command line; an unreachable target is a clear error', async () => {
    const s = services();
    const secretUrl = pgUrl(newName());
    const refused = await runCli(['restore', plain.name, '--target', secretUrl, '--create'], { env: plain.env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('refused on the command line');
    expect(refused.stderr).not.toContain(s.pg.password);

    const env = { ...plain.env, DEAD_URL: `postgresql://${s.pg.user}:${encodeURIComponent(s.pg.password)}@127.0.0.1:1/nowhere` };
    const dead = await runCli(['restore', plain.name, '--target-env', 'DEAD_URL', '--create'], { env });
    expect(dead.code).toBe(5);
    expect(dead.stderr).toMatch(/connection refused: postgresql:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/nowhere/);
    expect(dead.stderr).not.toContain(s.pg.password);
  });

  describe('a corrupt artifact is refused before the target is touched (exit 9)', () => {
    let victim: string;
    let victimBefore: Awaited<ReturnType<typeof snapshot>>;

    beforeAll(async () => {
      // A target holding the backup's objects (so --clean would drop them), slightly changed.
      victim = newName('victim');
      await sql('postgres', `CREATE DATABASE ${victim}`);
      await pgRestoreFile(join(plain.dir, 'backups', `${plain.name}.dump`), victim);
      await sql(victim, `UPDATE sales.customers SET name = 'victim' WHERE id < 10`);
      victimBefore = await snapshot(victim);
    });

    /** A copy of the plain backup's directory with its artifact damaged. */
    function damagedCopy(damage: (file: string) => void): { dir: string; file: string } {
      const dir = tempDir();
      cpSync(join(plain.dir, 'backups'), join(dir, 'backups'), { recursive: true });
      const file = join(dir, 'backups', `${plain.name}.dump`);
      damage(file);
      return { dir, file };
    }

    it.each([
      ['one byte flipped', (f: string) => flipByte(f, 200_000)],
      ['truncated', (f: string) => truncateBy(f, 1000)],
    ])('local copy, %s', async (_what, damage) => {
      const { dir } = damagedCopy(damage);
      const r = await runCli(['restore', plain.name, '--from', 'local', '--target', victim, '--yes'], {
        env: { ...plain.env, BACKUP_DIR: join(dir, 'backups') },
      });
      expect(r.code, r.stderr).toBe(9);
      expect(r.stderr).toMatch(/sha256 .* differs from the manifest|truncated/);
      expect(await snapshot(victim)).toEqual(victimBefore);
    });

    it.each([
      ['one byte flipped near the end', (f: string) => flipByte(f, -5000)],
      ['truncated', (f: string) => truncateBy(f, 1000)],
    ])(
      'bucket copy, %s (flipped: streamed, pg_restore stopped before COMMIT; truncated: refused from the listing)',
      async (what, damage) => {
        const { file } = damagedCopy(damage);
        const prefix = `corrupt-${uniqueId()}/`;
        for (const f of [`${plain.name}.manifest.json`, `${plain.name}.globals.sql`])
          await awsPut(join(plain.dir, 'backups', f), bucket, prefix + f);
        await awsPut(file, bucket, `${prefix}${plain.name}.dump`);
        const env = { ...plain.env, BACKUP_DIR: tempDir(), STORAGE_PREFIX: prefix };
        const r = await runCli(['restore', plain.name, '--from', 'remote', '--target', victim, '--yes'], { env });
        expect(r.code, r.stderr).toBe(9);
        if (what === 'truncated') expect(r.stderr).toMatch(/truncated/);
        else {
          // It really streamed: pg_restore ran in one transaction and was stopped by the checksum.
          expect(r.stderr).toMatch(/mode=stream .*singleTransaction=true/);
          expect(r.stderr).toMatch(/sha256 .* differs from the manifest/);
        }
        expect(await snapshot(victim)).toEqual(victimBefore);
      },
    );

    it('bucket copy without compression, one hex digit changed mid-data (pg_restore cannot notice): rolled back', async () => {
      // pg_restore would restore this silently; only the checksum sees it, at the very end.
      const b = await backupWith(db, undefined, { compression: 'none' });
      const file = join(b.dir, 'backups', `${b.name}.dump`);
      const bytes = readFileSync(file);
      let at = Math.floor(bytes.length / 2);
      while (!/[0-9a-f]/.test(String.fromCharCode(bytes[at]!))) at++;
      bytes[at] = bytes[at] === 0x30 ? 0x31 : 0x30;
      writeFileSync(file, bytes);
      const prefix = `corrupt-${uniqueId()}/`;
      for (const f of readdirSync(join(b.dir, 'backups')).filter((x) => !x.startsWith('.')))
        await awsPut(join(b.dir, 'backups', f), bucket, prefix + f);
      const env = { ...backupEnv({ database: db, dir: tempDir(), bucket }), STORAGE_PREFIX: prefix };
      const r = await runCli(['restore', b.name, '--from', 'remote', '--target', victim, '--yes'], { env });
      expect(r.code, r.stderr).toBe(9);
      expect(r.stderr).toMatch(/mode=stream .*singleTransaction=true/);
      expect(r.stderr).toMatch(/sha256 .* differs from the manifest/);
      expect(await snapshot(victim)).toEqual(victimBefore);
    });

    it('a corrupt local copy falls back to the intact one in the bucket', async () => {
      const { dir } = damagedCopy((f) => flipByte(f, 100_000));
      const target = newName();
      const r = await restoreJson([plain.name, '--target', target, '--create'], { ...plain.env, BACKUP_DIR: join(dir, 'backups') });
      expect(r.locations).toEqual(['remote']);
      expect(r.warnings.join(' ')).toMatch(/sha256 .* differs .*restored from remote instead/);
      expect(await snapshot(target)).toEqual(expected);
    });
  });
});

describe('pgbak restore --with-globals', () => {
  it('recreates a dropped owner role (password included, never logged) before pg_restore', async () => {
    const role = `app_${uniqueId()}`;
    const password = `pw-${uniqueId()}-secret`;
    const db = await createDatabase(
      'owned',
      `CREATE ROLE ${role} LOGIN PASSWORD '${password}'; CREATE TABLE things (id int PRIMARY KEY, v text); INSERT INTO things SELECT g, 'v' || g FROM generate_series(1, 100) g; ALTER TABLE things OWNER TO ${role};`,
    );
    const hash = await sql('postgres', `SELECT rolpassword FROM pg_authid WHERE rolname = '${role}'`);
    const before = await snapshot(db);
    const b = await backupWith(db, undefined, {});
    await sql('postgres', `DROP DATABASE ${db}`);
    await sql('postgres', `DROP ROLE ${role}`);

    // Without the role, pg_restore's errors are shown and the database it created is dropped again.
    const without = newName();
    const failed = await runCli(['restore', b.name, '--target', without, '--create'], { env: b.env });
    expect(failed.code).toBe(13);
    expect(failed.stderr).toContain(`role "${role}" does not exist`);
    expect(failed.stderr).toContain('--with-globals');
    expect(await databaseExists(without)).toBe(false);

    const target = newName();
    const r = await restoreJson([b.name, '--target', target, '--create', '--with-globals'], b.env);
    expect(r.globals.created).toEqual([role]);
    expect(r.globals.existing).toContain(services().pg.user);
    expect(await sql(target, `SELECT tableowner FROM pg_tables WHERE tablename = 'things'`)).toBe(role);
    expect(await sql('postgres', `SELECT rolpassword FROM pg_authid WHERE rolname = '${role}'`)).toBe(hash);
    expect(await snapshot(target)).toEqual(before);
    const log = readFileSync(join(b.dir, 'logs', 'backup-db.log'), 'utf8');
    expect(log).not.toMatch(/SCRAM-SHA-256|PASSWORD/);

    // Again, now that every role exists: they are left as they are.
    const again = await restoreJson([b.name, '--target', newName(), '--create', '--with-globals'], b.env);
    expect(again.globals.created).toEqual([]);
    expect(again.globals.existing).toContain(role);
  });
});
