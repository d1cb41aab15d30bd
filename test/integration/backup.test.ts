import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { RUNUSER } from '../helpers/postgres-cluster.js';
import {
  awsEnv,
  createBucket,
  createDatabase,
  execFileAsync,
  pgUrl,
  SAMPLE_SQL,
  services,
  sql,
  tableChecksums,
  tempDir,
} from '../helpers/services.js';
import { jsonResult } from '../helpers/json-schemas.js';

const sha256File = (path: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });

/** Restore a custom-format archive (a file, or stdin when null) with plain pg_restore into a new database. */
async function pgRestoreInto(file: string, viaGpg = false): Promise<string> {
  const s = services();
  const target = await createDatabase('restored');
  const env = { ...process.env, PGPASSWORD: s.pg.password, GNUPGHOME: s.gpg.home };
  const restore = `pg_restore --host=${s.pg.host} --port=${s.pg.port} --username=${s.pg.user} --dbname=${target} --clean --if-exists --no-owner`;
  const cmd = viaGpg ? `gpg --batch --quiet --decrypt '${file}' | ${restore}` : `${restore} '${file}'`;
  await execFileAsync('bash', ['-o', 'pipefail', '-c', cmd], { env });
  return target;
}

describe('pgbak backup', () => {
  let db: string;
  let sourceSums: Record<string, string>;

  beforeAll(async () => {
    db = await createDatabase('shop', SAMPLE_SQL);
    sourceSums = await tableChecksums(db);
  });

  it('writes a custom-format dump that plain pg_restore restores, with its manifest last', async () => {
    const dir = tempDir();
    const r = await runCli(['backup', '--json'], { env: backupEnv({ database: db, dir }) });
    expect(r.stderr).not.toContain(services().pg.password);
    expect(r.code, r.stderr).toBe(0);
    const result = jsonResult(r.stdout);
    expect(result.status).toBe('ok');
    expect(result.name).toMatch(new RegExp(`^${db}_\\d{8}_\\d{6}$`));

    const backups = join(dir, 'backups');
    const files = readdirSync(backups)
      .filter((f) => !f.startsWith('.'))
      .sort();
    expect(files).toEqual(
      [`${result.name}.dump`, `${result.name}.globals.sql`, `${result.name}.manifest.json`, `${result.name}.run.json`].sort(),
    );
    expect(statSync(backups).mode & 0o777).toBe(0o700);
    for (const f of files) expect(statSync(join(backups, f)).mode & 0o777).toBe(0o600);

    const manifest = JSON.parse(readFileSync(join(backups, `${result.name}.manifest.json`), 'utf8'));
    const dump = join(backups, `${result.name}.dump`);
    expect(manifest).toMatchObject({
      format: 'pgbak-manifest',
      version: 1,
      database: db,
      compression: { method: 'gzip', level: 9, by: 'pg_dump' },
      encryption: null,
    });
    expect(manifest.artifact.size).toBe(statSync(dump).size);
    expect(manifest.artifact.sha256).toBe(await sha256File(dump));
    expect(manifest.server.versionNum).toBeGreaterThan(100000);
    // The server's identity, and the run that claimed the name first (its run record).
    expect(manifest.server.systemIdentifier).toMatch(/^\d+$/);
    const run = JSON.parse(readFileSync(join(backups, `${result.name}.run.json`), 'utf8'));
    expect(run).toMatchObject({
      format: 'pgbak-run',
      name: result.name,
      runId: manifest.runId,
      database: db,
      systemIdentifier: manifest.server.systemIdentifier,
    });
    expect(statSync(join(backups, `${result.name}.run.json`)).mtimeMs).toBeLessThanOrEqual(statSync(dump).mtimeMs);
    expect(manifest.tables).toEqual(
      expect.arrayContaining([
        { schema: 'public', table: 'orders', rows: 5000 },
        { schema: 'public', table: 'customers', rows: 500 },
      ]),
    );
    // The manifest is written after the artifact.
    expect(statSync(join(backups, `${result.name}.manifest.json`)).mtimeMs).toBeGreaterThanOrEqual(statSync(dump).mtimeMs);
    // The custom format at level 9 (pg_restore -l shows it).
    const { stdout: toc } = await execFileAsync('pg_restore', ['-l', dump]);
    expect(toc).toMatch(/Format: CUSTOM/);
    expect(toc).toMatch(/Compression: (9|gzip)/);

    const restored = await pgRestoreInto(dump);
    expect(await tableChecksums(restored)).toEqual(sourceSums);
    // The log file got readable lines, without the password.
    const log = readFileSync(join(dir, 'logs', 'backup-db.log'), 'utf8');
    expect(log).toMatch(/INFO +backup finished/);
    expect(log).not.toContain(services().pg.password);
  });

  it('encrypts with gpg and uploads the same bytes to the bucket in one pass', async () => {
    const dir = tempDir();
    const bucket = await createBucket();
    const r = await runCli(['backup', '--json'], { env: backupEnv({ database: db, dir, bucket, encrypt: true }) });
    expect(r.code, r.stderr).toBe(0);
    const result = jsonResult(r.stdout);
    expect(result.encrypted).toBe(true);
    const name = `${result.name}.dump.gpg`;
    const local = join(dir, 'backups', name);
    expect(result.paths).toEqual([local, `s3://${bucket}/backups/${name}`]);
    expect(result.locations).toEqual(['local', 'remote']);
    expect(r.stdout + r.stderr).not.toContain(services().s3.secretKey);

    // The object, fetched with the aws CLI, equals the local file and the manifest's sha256.
    const fetched = join(dir, 'fetched.dump.gpg');
    await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/backups/${name}`, fetched, '--endpoint-url', services().s3.endpoint], {
      env: awsEnv(),
    });
    const manifest = JSON.parse(readFileSync(join(dir, 'backups', `${result.name}.manifest.json`), 'utf8'));
    expect(await sha256File(fetched)).toBe(manifest.artifact.sha256);
    expect(await sha256File(local)).toBe(manifest.artifact.sha256);
    expect(manifest.encryption).toMatchObject({ method: 'gpg', fingerprint: services().gpg.fingerprint });
    const { stdout: listing } = await execFileAsync(
      'aws',
      ['s3', 'ls', `s3://${bucket}/backups/`, '--endpoint-url', services().s3.endpoint],
      { env: awsEnv() },
    );
    expect(listing).toContain(`${result.name}.manifest.json`);
    expect(listing).toContain(`${result.name}.globals.sql.gpg`);

    // Not readable without the key; restores after a plain `gpg --decrypt`.
    expect(readFileSync(local).subarray(0, 5).toString()).not.toBe('PGDMP');
    const restored = await pgRestoreInto(local, true);
    expect(await tableChecksums(restored)).toEqual(sourceSums);
  });

  it('--dry-run checks everything, prints the plan and creates nothing', async () => {
    const dir = tempDir();
    const bucket = await createBucket();
    const r = await runCli(['backup', '--dry-run'], { env: backupEnv({ database: db, dir, bucket, encrypt: true }) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[ok\] database: PostgreSQL/);
    expect(r.stdout).toMatch(/\[ok\] pg_dump: /);
    expect(r.stdout).toMatch(/\[ok\] gpg key: .*/);
    expect(r.stdout).toMatch(/\[ok\] bucket: /);
    expect(r.stdout).toContain(`s3://${bucket}/backups/${db}_`);
    expect(r.stdout + r.stderr).not.toContain(services().pg.password);
    expect(r.stdout + r.stderr).not.toContain(services().s3.secretKey);
    expect(readdirSync(dir)).toEqual([]);
    const { stdout: listing } = await execFileAsync(
      'aws',
      ['s3', 'ls', `s3://${bucket}/`, '--recursive', '--endpoint-url', services().s3.endpoint],
      { env: awsEnv() },
    );
    expect(listing.trim()).toBe('');
  });

  it('keeps the local backup and exits 3 when the upload fails (wrong credentials)', async () => {
    const dir = tempDir();
    const bucket = await createBucket();
    const env = backupEnv({ database: db, dir, bucket, extra: { STORAGE_SECRET_KEY: 'wrong-secret-key-123' } });
    // The dry run predicts exactly that: partial, exit 3 (not "would FAIL").
    const dry = await runCli(['backup', '--dry-run'], { env });
    expect(dry.code).toBe(3);
    expect(dry.stdout).toMatch(/\[FAIL\] bucket: /);
    expect(dry.stdout).toMatch(/result: a backup would be PARTIAL: kept locally, not uploaded \(exit 3/);
    expect(dry.stderr + dry.stdout).not.toContain('wrong-secret-key-123');
    const r = await runCli(['backup', '--json', '--set', 'BACKUP_PRUNE=false'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/upload failed/);
    expect(r.stderr).toMatch(/credentials|STORAGE_ACCESS_KEY|STORAGE_SECRET_KEY/);
    expect(r.stderr + r.stdout).not.toContain('wrong-secret-key-123');
    const result = jsonResult(r.stdout);
    expect(result.status).toBe('partial');
    const files = readdirSync(join(dir, 'backups')).filter((f) => !f.startsWith('.'));
    expect(files).toContain(`${result.name}.dump`);
    expect(files).toContain(`${result.name}.manifest.json`);
  });

  it('reports every bad variable at once, with its name, before any work', async () => {
    const dir = tempDir();
    const env = backupEnv({
      database: db,
      dir,
      extra: { RETENTION_DAYS: 'abc', BACKUP_COMPRESSION: 'brotli:5', STORAGE_ENDPOINT: 'not a url', BACKUP_KEEP_MIN: '-2' },
    });
    const r = await runCli(['backup'], { env });
    expect(r.code).toBe(2);
    for (const name of ['RETENTION_DAYS', 'BACKUP_COMPRESSION', 'STORAGE_ENDPOINT', 'BACKUP_KEEP_MIN']) expect(r.stderr).toContain(name);
    expect(existsSync(join(dir, 'backups'))).toBe(false);
    const negative = await runCli(['backup'], { env: backupEnv({ database: db, dir, extra: { RETENTION_DAYS: '-1' } }) });
    expect(negative.code).toBe(2);
    expect(negative.stderr).toMatch(/RETENTION_DAYS="-1": must be 0 or more/);
  });

  it('names each database failure with a redacted URL, a hint and exit code 5', async () => {
    const s = services();
    const dir = tempDir();
    const wrongPw = backupEnv({
      database: db,
      dir,
      extra: { DATABASE_URL: `postgresql://postgres:not-the-password@${s.pg.host}:${s.pg.port}/${db}` },
    });
    let r = await runCli(['backup'], { env: wrongPw });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/authentication failed: postgresql:\/\/postgres:\*\*\*@/);
    expect(r.stderr).not.toContain('not-the-password');
    expect(r.stderr).toMatch(/^hint: /m);

    r = await runCli(['backup'], { env: backupEnv({ database: `${db}_missing`, dir }) });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/database does not exist/);

    r = await runCli(['backup'], {
      env: backupEnv({ database: db, dir, extra: { DATABASE_URL: pgUrl(db).replace(`:${s.pg.port}/`, ':1/') } }),
    });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/connection refused/);
    expect(readdirSync(join(dir, 'backups')).filter((f) => !f.startsWith('.'))).toEqual([]);
  });

  it('fails with exit 8 and an import hint when the GPG key is missing', async () => {
    const dir = tempDir();
    const r = await runCli(['backup'], { env: backupEnv({ database: db, dir, extra: { GPG_RECIPIENT: 'nobody@nowhere.test' } }) });
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/GPG key not found: nobody@nowhere.test/);
    expect(r.stderr).toMatch(/hint: .*gpg --import/);
  });

  it('backs up and restores a database whose name needs percent-encoding in the URL (/ ? # & , space)', async () => {
    // libpq decodes every %XX of the URL's path; node-postgres' own parser leaves %2F %3F %23 %26 %2C
    // encoded, so pgbak's own queries must decode the name the same way pg_dump does.
    const odd = `o/d?b#x&y, z ${Date.now() % 100000}`;
    await sql('postgres', `CREATE DATABASE "${odd}"`);
    await sql(odd, SAMPLE_SQL);
    const sums = await tableChecksums(odd);
    const dir = tempDir();
    const env = backupEnv({ database: odd, dir });
    const r = await runCli(['backup', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const result = jsonResult(r.stdout);
    const manifest = JSON.parse(readFileSync(join(dir, 'backups', `${result.name}.manifest.json`), 'utf8'));
    expect(manifest.database).toBe(odd);
    expect(manifest.tables).toEqual(expect.arrayContaining([{ schema: 'public', table: 'orders', rows: 5000 }]));
    const target = `${odd} restored`;
    const back = await runCli(['restore', '--latest', '--target', target, '--create'], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(await tableChecksums(target)).toEqual(sums);
  });

  it('--no-encrypt and --no-upload skip those steps', async () => {
    const dir = tempDir();
    const bucket = await createBucket();
    const r = await runCli(['backup', '--no-encrypt', '--no-upload', '--json'], {
      env: backupEnv({ database: db, dir, bucket, encrypt: true }),
    });
    expect(r.code, r.stderr).toBe(0);
    const result = jsonResult(r.stdout);
    expect(result.encrypted).toBe(false);
    expect(result.paths).toEqual([join(dir, 'backups', `${result.name}.dump`)]);
    expect(result.locations).toEqual(['local']);
    const { stdout: listing } = await execFileAsync(
      'aws',
      ['s3', 'ls', `s3://${bucket}/`, '--recursive', '--endpoint-url', services().s3.endpoint],
      { env: awsEnv() },
    );
    expect(listing.trim()).toBe('');
  });

  it('refuses secrets on the command line', async () => {
    const dir = tempDir();
    const r = await runCli(['backup', '--set', 'STORAGE_SECRET_KEY=abcdef'], { env: backupEnv({ database: db, dir }) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refused on the command line/);
    expect(r.stderr).not.toContain('abcdef');
  });

  it('lets a stale lock of a killed run pass', async () => {
    const dir = tempDir();
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(join(dir, 'backups'), { recursive: true });
    const { hostname } = await import('node:os');
    writeFileSync(
      join(dir, 'backups', `.pgbak-${db}.lock`),
      JSON.stringify({ pid: 999_999, host: hostname(), startedAt: new Date().toISOString() }),
    );
    const r = await runCli(['backup'], { env: backupEnv({ database: db, dir }) });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(dir, 'backups', `.pgbak-${db}.lock`))).toBe(false);
  });

  it('names a permission problem on BACKUP_DIR or LOG_FILE with exit code 6', async () => {
    const { chmodSync } = await import('node:fs');
    const locked = tempDir(); // 0700, owned by root: the unprivileged user cannot write there
    const cwd = tempDir();
    chmodSync(cwd, 0o755);
    const asNobody = [RUNUSER, '-u', 'nobody', '--'];
    const base = { ...backupEnv({ database: db, dir: locked }), HOME: cwd };
    let r = await runCli(['backup'], { env: { ...base, LOG_FILE: '' }, cwd, prefix: asNobody });
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toContain(`permission denied`);
    expect(r.stderr).toContain(join(locked, 'backups'));
    expect(r.stderr).toMatch(/^hint: .*BACKUP_DIR/m);

    r = await runCli(['backup'], { env: { ...base, BACKUP_DIR: join(cwd, 'b') }, cwd, prefix: asNobody });
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toContain(join(locked, 'logs'));
    expect(r.stderr).toMatch(/^hint: .*LOG_FILE/m);
  });

  it('prunes after each successful backup (never below BACKUP_KEEP_MIN), unless --no-prune', async () => {
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, extra: { RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '2', BACKUP_GLOBALS: 'false' } });
    const manifests = () =>
      readdirSync(join(dir, 'backups'))
        .filter((f) => f.endsWith('.manifest.json'))
        .sort();
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 1100)); // names have one-second resolution
      const r = await runCli(['backup', '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      names.push(jsonResult(r.stdout).name);
    }
    // RETENTION_DAYS=0 lets every backup go, but the newest two good ones always stay.
    expect(manifests()).toEqual(names.slice(1).map((n) => `${n}.manifest.json`));
    expect(
      readdirSync(join(dir, 'backups'))
        .filter((f) => f.endsWith('.dump'))
        .sort(),
    ).toEqual(names.slice(1).map((n) => `${n}.dump`));

    await new Promise((r) => setTimeout(r, 1100));
    const kept = await runCli(['backup', '--no-prune', '--json'], { env });
    expect(kept.code, kept.stderr).toBe(0);
    expect(manifests()).toHaveLength(3);
  });
});
