// BACKUP_JOBS=2: pg_dump --format=directory --jobs=2, each file of the directory stored (gpg,
// checksummed) in BACKUP_DIR and the bucket as <name>.dir/<file>, the manifest listing every file
// and written last. The bucket's files match the manifest's sha256; restore --parallel 2 from the
// bucket and from BACKUP_DIR gives the data back; a corrupted file fails verify and restore naming
// it; a failed or interrupted dump leaves nothing under a final name and no temporary directory;
// a second target gets every file; prune removes every file of an old directory backup.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli, spawnCli } from '../helpers/cli.js';
import { jsonResult } from '../helpers/json-schemas.js';
import { jobScripts, kitPlaceholders } from '../helpers/recovery-kit.js';
import { awsKeys, flipByte, snapshot } from '../helpers/restore-fixtures.js';
import { awsEnv, createBucket, createDatabase, execFileAsync, SAMPLE_SQL, services, tempDir, uniqueId } from '../helpers/services.js';

interface DirManifest {
  name: string;
  artifact: { key: string; size: number; sha256: string };
  directory: { jobs: number; files: { key: string; size: number; sha256: string }[] };
}

const EXTRA_SQL = `
CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload jsonb);
INSERT INTO events SELECT g, 'k' || (g % 13), jsonb_build_object('g', g, 'pad', repeat('y', g % 80)) FROM generate_series(1, 20000) g;
CREATE TABLE empty_one (id int);
`;

/** The temporary directories of a directory dump or a restore's spool (the last-run record is not one). */
const isTemp = (f: string) => f.startsWith('.pgbak-dirdump-') || f.startsWith('.pgbak-restore-');

async function sha256Of(bucket: string, key: string): Promise<{ sha256: string; size: number }> {
  const file = join(tempDir(), 'object');
  await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/${key}`, file, '--endpoint-url', services().s3.endpoint, '--only-show-errors'], {
    env: awsEnv(),
  });
  const body = readFileSync(file);
  return { sha256: createHash('sha256').update(body).digest('hex'), size: body.length };
}

describe('BACKUP_JOBS=2: a directory-format backup', () => {
  let db: string;
  let dir: string;
  let bucket: string;
  let offsite: string;
  let env: NodeJS.ProcessEnv;
  let manifest: DirManifest;
  let expected: Awaited<ReturnType<typeof snapshot>>;

  beforeAll(async () => {
    db = await createDatabase('dirjobs', SAMPLE_SQL + EXTRA_SQL);
    expected = await snapshot(db);
    dir = tempDir();
    bucket = await createBucket('dirjobs');
    offsite = await createBucket('diroffsite');
    const s3 = services().s3;
    // A second target (STORAGE_2_*): every file goes there too, with its own manifest, last.
    const second = {
      STORAGE_2_ENDPOINT: s3.endpoint,
      STORAGE_2_ACCESS_KEY: s3.accessKey,
      STORAGE_2_SECRET_KEY: s3.secretKey,
      STORAGE_2_BUCKET: offsite,
      STORAGE_2_PREFIX: 'offsite/',
    };
    env = backupEnv({ database: db, dir, bucket, encrypt: true, extra: { BACKUP_JOBS: '2', BACKUP_COMPRESSION: 'gzip:6', ...second } });
    const r = await runCli(['backup', '--json', '--no-prune'], { env });
    expect(r.code, r.stderr).toBe(0);
    const name = jsonResult(r.stdout).name as string;
    // The backup is its directory: the result names it (not toc.dat), with how many files it holds.
    expect(jsonResult(r.stdout)).toMatchObject({
      paths: [join(dir, 'backups', `${name}.dir/`), `s3://${bucket}/backups/${name}.dir/`, `s3://${offsite}/offsite/${name}.dir/`],
      files: expect.any(Number),
    });
    manifest = JSON.parse(readFileSync(join(dir, 'backups', `${name}.manifest.json`), 'utf8')) as DirManifest;
  }, 240_000);

  it('stores every file of the directory, each listed in the manifest with the sha256 of what the bucket holds', async () => {
    const { name, directory } = manifest;
    expect(directory.jobs).toBe(2);
    const files = directory.files.map((f) => f.key);
    expect(files[0]).toBe(`${name}.dir/toc.dat.gpg`);
    expect(manifest.artifact).toEqual(directory.files[0]);
    // toc.dat and one .dat.gz per table with rows (customers, orders, events; empty_one too: pg_dump writes a file per table).
    expect(files.filter((k) => /^.+\.dir\/\d+\.dat\.gz\.gpg$/.test(k)).length).toBeGreaterThanOrEqual(3);
    const keys = await awsKeys(bucket, 'backups/');
    const offsiteKeys = await awsKeys(offsite, 'offsite/');
    expect(offsiteKeys).toContain(`offsite/${name}.manifest.json`);
    for (const f of directory.files) {
      expect(keys).toContain(`backups/${f.key}`);
      expect(offsiteKeys).toContain(`offsite/${f.key}`);
      expect(await sha256Of(bucket, `backups/${f.key}`)).toEqual({ sha256: f.sha256, size: f.size });
      expect(readdirSync(join(dir, 'backups', `${name}.dir`))).toContain(f.key.slice(f.key.indexOf('/') + 1));
    }
    // Nothing else under the backup's directory, and no temporary directory left in BACKUP_DIR.
    expect(readdirSync(join(dir, 'backups', `${name}.dir`)).sort()).toEqual(files.map((k) => k.slice(k.indexOf('/') + 1)).sort());
    expect(readdirSync(join(dir, 'backups')).filter(isTemp)).toEqual([]);

    const list = await runCli(['list', '--json'], { env });
    expect(list.code, list.stderr).toBe(0);
    // The backup's size is every file's, not toc.dat's alone.
    const listed = (JSON.parse(list.stdout) as { results: { name: string; sizeBytes: number }[] }).results.find((b) => b.name === name);
    expect(listed?.sizeBytes).toBe(directory.files.reduce((n, f) => n + f.size, 0));
    expect((listed as { paths?: string[] } | undefined)?.paths).toEqual([
      join(dir, 'backups', `${name}.dir/`),
      `s3://${bucket}/backups/${name}.dir/`,
    ]);
    const verify = await runCli(['verify', name, '--json'], { env });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it('--dry-run describes the directory-format backup a run makes, not a single file', async () => {
    const r = await runCli(['backup', '--dry-run', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const plan = jsonResult<{ steps: string[]; files: string[]; objects: string[] }>(r.stdout);
    expect(plan.steps[0]).toMatch(/^pg_dump --format=directory --jobs=2 -Z 6 \(gzip:6\) into a temporary directory in /);
    expect(plan.steps).toContain('sha256 of each stored file');
    const dirs = [...plan.files, ...plan.objects].filter((f) => f.endsWith('.dir/'));
    expect(dirs).toHaveLength(3); // BACKUP_DIR, the bucket, the second target
    expect([...plan.files, ...plan.objects].filter((f) => /\.dump(\.|$)/.test(f))).toEqual([]);
  });

  it('restores with --parallel 2 from the bucket and from BACKUP_DIR into fresh databases', async () => {
    for (const from of ['remote', 'local']) {
      const target = `dirrestored_${from}_${uniqueId()}`;
      const r = await runCli(['restore', manifest.name, '--from', from, '--target', target, '--create', '--parallel', '2', '--json'], {
        env,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(await snapshot(target)).toEqual(expected);
    }
    // The spool directory is gone.
    expect(readdirSync(join(dir, 'backups')).filter(isTemp)).toEqual([]);
  });

  it("the recovery kit's recipe, followed literally without pgbak, restores a directory backup: from the bucket (gzip in the archive, gpg) and from BACKUP_DIR (a zstd layer and gpg on each file)", async () => {
    const zstdDir = tempDir();
    const zstdEnv = backupEnv({ database: db, dir: zstdDir, encrypt: true, extra: { BACKUP_JOBS: '2', BACKUP_COMPRESSION: 'zstd:3' } });
    const z = await runCli(['backup', '--json', '--no-prune'], { env: zstdEnv });
    expect(z.code, z.stderr).toBe(0);
    for (const [how, kitEnv, name] of [
      ['bucket', env, manifest.name],
      ['local', zstdEnv, jsonResult(z.stdout).name as string],
    ] as const) {
      const kit = tempDir('pgbak-dirkit-');
      const k = await runCli(['recovery-kit', kit], { env: kitEnv });
      expect(k.code, k.stderr).toBe(0);
      const readme = readFileSync(join(kit, 'README.md'), 'utf8');
      expect(readme).toContain(`**directory-format** dump (BACKUP_JOBS=2`);
      expect(readme).toContain(`pg_restore --jobs=2`);
      const stored = JSON.parse(readFileSync(join(kitEnv.BACKUP_DIR!, `${name}.manifest.json`), 'utf8')) as DirManifest;
      // SHA256SUMS lists every file of the directory.
      const sums = readFileSync(join(kit, 'SHA256SUMS'), 'utf8');
      for (const f of stored.directory.files) expect(sums).toContain(`${f.sha256}  ${db}/${f.key}\n`);
      if (how === 'local') expect(stored.directory.files.every((f) => f.key.endsWith('.zst.gpg'))).toBe(true);
      const script = jobScripts(readme).get(db)!;
      const target = `dirkit_${how}_${uniqueId()}`;
      const { stderr } = await execFileAsync('bash', ['-c', `if command -v pgbak; then exit 99; fi\n${script}`], {
        cwd: kit,
        env: kitPlaceholders(target),
        maxBuffer: 64 * 1024 * 1024,
      });
      expect(stderr).not.toMatch(/FAILED/);
      expect(await snapshot(target), how).toEqual(expected);
    }
  }, 240_000);

  it('a corrupted file fails verify and restore, naming it', async () => {
    const victim = manifest.directory.files.find((f) => f.key.endsWith('.dat.gz.gpg') && f.size > 1000)!;
    const copyDir = tempDir();
    const localEnv = { ...env, BACKUP_DIR: join(copyDir, 'backups') };
    await execFileAsync('cp', ['-r', join(dir, 'backups'), copyDir]);
    flipByte(join(copyDir, 'backups', victim.key), 500);
    const file = victim.key.slice(victim.key.indexOf('/') + 1);
    // Restore first: verify records its failure, and restore then refuses the copy at once.
    const target = `dircorrupt_${uniqueId()}`;
    const r = await runCli(['restore', manifest.name, '--from', 'local', '--target', target, '--create', '--parallel', '2'], {
      env: localEnv,
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(/sha256|checksum|corrupt/i);
    const v = await runCli(['verify', manifest.name], { env: localEnv });
    expect(v.code).not.toBe(0);
    expect(v.stdout + v.stderr).toContain(file);
    expect(readdirSync(join(copyDir, 'backups')).filter(isTemp)).toEqual([]);
  });

  it('a pg_dump that fails after writing leaves nothing under a final name and no temporary directory', async () => {
    const fake = tempDir('pgbak-failing-pgdump-');
    const real = services().pg.bindir;
    writeFileSync(
      join(fake, 'pg_dump'),
      `#!/bin/sh\ncase "$1" in --version|-V) exec "${real}/pg_dump" "$@";; esac\n"${real}/pg_dump" "$@"\necho "pg_dump: error: simulated failure after writing" >&2\nexit 1\n`,
    );
    chmodSync(join(fake, 'pg_dump'), 0o755);
    symlinkSync(join(real, 'pg_dumpall'), join(fake, 'pg_dumpall'));
    const failDir = tempDir();
    const failBucket = await createBucket('dirfail');
    const failEnv = backupEnv({
      database: db,
      dir: failDir,
      bucket: failBucket,
      encrypt: true,
      extra: { BACKUP_JOBS: '2', PG_DUMP_PATH: fake },
    });
    const r = await runCli(['backup'], { env: failEnv });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('simulated failure after writing');
    const left = existsSync(join(failDir, 'backups')) ? readdirSync(join(failDir, 'backups')) : [];
    expect(left.filter((f) => f.startsWith(db) || f.startsWith('.pgbak-dirdump'))).toEqual([]);
    expect((await awsKeys(failBucket, 'backups/')).filter((k) => k.includes(db) && !k.endsWith('.last-run.json'))).toEqual([]);
  });

  it('Ctrl-C while pg_dump runs: exit 130, the temporary directory removed, nothing under a final name', async () => {
    const fake = tempDir('pgbak-slow-pgdump-');
    const real = services().pg.bindir;
    // The real dump, then a pause: the interrupt comes while pg_dump (this script) still runs.
    writeFileSync(
      join(fake, 'pg_dump'),
      `#!/bin/sh\ncase "$1" in --version|-V) exec "${real}/pg_dump" "$@";; esac\n"${real}/pg_dump" "$@" || exit 1\nsleep 60\n`,
    );
    chmodSync(join(fake, 'pg_dump'), 0o755);
    symlinkSync(join(real, 'pg_dumpall'), join(fake, 'pg_dumpall'));
    const intDir = tempDir();
    const intEnv = backupEnv({ database: db, dir: intDir, encrypt: true, extra: { BACKUP_JOBS: '2', PG_DUMP_PATH: fake } });
    const { child, done } = spawnCli(['backup'], { env: intEnv, timeoutMs: 180_000 });
    const backups = join(intDir, 'backups');
    const dumped = () =>
      existsSync(backups) && readdirSync(backups).some((f) => isTemp(f) && existsSync(join(backups, f, 'dump', 'toc.dat')));
    for (let i = 0; i < 1200 && !dumped(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(dumped()).toBe(true);
    child.kill('SIGINT');
    const r = await done;
    expect(r.code, r.stderr).toBe(130);
    expect(readdirSync(backups).filter((f) => isTemp(f) || f.startsWith(db))).toEqual([]);
  });

  it('pgbak upload stores a directory backup made with --no-upload: every file checked into the bucket, the manifest last; list names the directories', async () => {
    const made = await runCli(['backup', '--no-upload', '--json', '--no-prune'], { env });
    expect(made.code, made.stderr).toBe(0);
    const name = jsonResult<{ name: string }>(made.stdout).name;
    expect((await awsKeys(bucket, 'backups/')).filter((k) => k.includes(name))).toEqual([]);
    const up = await runCli(['upload', name, '--json'], { env });
    expect(up.code, up.stderr).toBe(0);
    expect(jsonResult<{ status: string }>(up.stdout).status).toBe('uploaded');
    const own = JSON.parse(readFileSync(join(dir, 'backups', `${name}.manifest.json`), 'utf8')) as DirManifest;
    for (const f of own.directory.files) expect(await sha256Of(bucket, `backups/${f.key}`)).toEqual({ sha256: f.sha256, size: f.size });
    expect(await awsKeys(bucket, 'backups/')).toContain(`backups/${name}.manifest.json`);
    const verify = await runCli(['verify', name, '--json'], { env });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    // list names the directory in both places.
    const list = await runCli(['list', '--json'], { env });
    const listed = (JSON.parse(list.stdout) as { results: { name: string; paths: string[] }[] }).results.find((b) => b.name === name);
    expect(listed?.paths).toEqual([join(dir, 'backups', `${name}.dir/`), `s3://${bucket}/backups/${name}.dir/`]);
  });

  it('prune removes every file of an old directory backup, locally and in the bucket', async () => {
    const second = await runCli(['backup', '--json', '--no-prune'], { env });
    expect(second.code, second.stderr).toBe(0);
    const p = await runCli(['prune'], { env: { ...env, RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '1' } });
    expect(p.code, p.stderr).toBe(0);
    expect(existsSync(join(dir, 'backups', `${manifest.name}.dir`))).toBe(false);
    expect((await awsKeys(bucket, 'backups/')).filter((k) => k.includes(manifest.name))).toEqual([]);
  });
});
