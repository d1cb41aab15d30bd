import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli, spawnCli } from '../helpers/cli.js';
import { awsEnv, createBucket, createDatabase, execFileAsync, SAMPLE_SQL, services, tableChecksums, tempDir } from '../helpers/services.js';
import { jsonResult } from '../helpers/json-schemas.js';

/** Every BACKUP_COMPRESSION profile, with the file name, manifest and README recipe it must give (pg_dump 15 here). */
const PROFILES = [
  { setting: 'zstd:3', method: 'zstd', level: 3, by: 'stream', ext: '.dump.zst', magic: '28b52ffd', decompress: 'zstd -d -c' },
  { setting: 'lz4:1', method: 'lz4', level: 1, by: 'stream', ext: '.dump.lz4', magic: '04224d18', decompress: 'lz4 -d -c' },
  {
    setting: 'none',
    method: 'none',
    level: 0,
    by: 'pg_dump',
    ext: '.dump',
    magic: Buffer.from('PGDMP').toString('hex'),
    decompress: undefined,
  },
  {
    setting: 'gzip:1',
    method: 'gzip',
    level: 1,
    by: 'pg_dump',
    ext: '.dump',
    magic: Buffer.from('PGDMP').toString('hex'),
    decompress: undefined,
  },
] as const;

type Profile = (typeof PROFILES)[number];

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');
const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** The README's manual recipe: [gpg --decrypt |] [zstd -d -c |] pg_restore --clean --if-exists. */
function recipe(file: string, profile: Profile, encrypted: boolean, target: string): string {
  const s = services();
  const restore = `pg_restore --host=${s.pg.host} --port=${s.pg.port} --username=${s.pg.user} --dbname=${target} --clean --if-exists --no-owner`;
  const steps: string[] = [];
  if (encrypted) steps.push(`gpg --batch --quiet --decrypt ${q(file)}`);
  if (profile.decompress) steps.push(encrypted ? profile.decompress : `${profile.decompress} ${q(file)}`);
  if (steps.length === 0) return `${restore} ${q(file)}`;
  return [...steps, restore].join(' | ');
}

async function sh(command: string): Promise<string> {
  const s = services();
  const env = { ...process.env, PGPASSWORD: s.pg.password, GNUPGHOME: s.gpg.home };
  const { stdout } = await execFileAsync('bash', ['-o', 'pipefail', '-c', command], { env, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

describe('BACKUP_COMPRESSION profiles', () => {
  let db: string;
  let bucket: string;
  let sourceSums: Record<string, string>;
  const sizes = new Map<string, number>();

  beforeAll(async () => {
    db = await createDatabase('comp', SAMPLE_SQL);
    bucket = await createBucket('comp');
    sourceSums = await tableChecksums(db);
  });

  for (const profile of PROFILES) {
    for (const encrypted of [false, true]) {
      it(`${profile.setting}${encrypted ? ' + gpg' : ''}: ${profile.ext}${encrypted ? '.gpg' : ''}, manifest, upload and the README recipe`, async () => {
        const dir = tempDir();
        const env = backupEnv({
          database: db,
          dir,
          bucket,
          encrypt: encrypted,
          extra: { BACKUP_COMPRESSION: profile.setting, BACKUP_GLOBALS: 'false' },
        });
        const r = await runCli(['backup', '--json'], { env });
        expect(r.code, r.stderr).toBe(0);
        const result = jsonResult(r.stdout);
        const artifact = `${result.name}${profile.ext}${encrypted ? '.gpg' : ''}`;

        // Local files: exactly the artifact, its manifest and the run record that claimed the name.
        const backups = join(dir, 'backups');
        expect(
          readdirSync(backups)
            .filter((f) => !f.startsWith('.'))
            .sort(),
        ).toEqual([artifact, `${result.name}.manifest.json`, `${result.name}.run.json`].sort());
        const local = join(backups, artifact);
        const bytes = readFileSync(local);
        const manifest = JSON.parse(readFileSync(join(backups, `${result.name}.manifest.json`), 'utf8'));
        expect(manifest.compression).toEqual({ method: profile.method, level: profile.level, by: profile.by });
        expect(manifest.artifact).toMatchObject({ key: artifact, size: bytes.length, sha256: sha256(bytes) });
        expect(manifest.encryption === null).toBe(!encrypted);
        if (!encrypted) {
          expect(bytes.subarray(0, 4).toString('hex')).toBe(profile.magic.slice(0, 8));
          sizes.set(profile.setting, bytes.length);
        }

        // The same bytes in the bucket, under the same name.
        const fetched = join(dir, 'fetched');
        await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/backups/${artifact}`, fetched, '--endpoint-url', services().s3.endpoint], {
          env: awsEnv(),
        });
        expect(sha256(readFileSync(fetched))).toBe(manifest.artifact.sha256);

        // Inside the stream layer is a custom-format archive, itself uncompressed for zstd/lz4.
        const unwrap = recipe(local, profile, encrypted, 'unused').split(' | ').slice(0, -1).join(' | ');
        // (pg_restore -l reads only the TOC and would close a pipe early: unwrap into a file first.)
        const plain = join(dir, 'plain.dump');
        if (unwrap) await sh(`${unwrap} > ${q(plain)}`);
        const toc = await sh(`pg_restore -l ${q(unwrap ? plain : local)}`);
        expect(toc).toMatch(/Format: CUSTOM/);
        const inner = profile.method === 'gzip' ? '(1|gzip)' : '(0|none)';
        expect(toc).toMatch(new RegExp(`Compression: ${inner}\\b`));

        // The README's manual recipe restores it, and the data compares equal.
        const target = await createDatabase('restored');
        await sh(recipe(local, profile, encrypted, target));
        expect(await tableChecksums(target)).toEqual(sourceSums);
      });
    }
  }

  it('zstd and lz4 files are smaller than the uncompressed archive', () => {
    const none = sizes.get('none');
    expect(none).toBeGreaterThan(0);
    expect(sizes.get('zstd:3')).toBeLessThan(none!);
    expect(sizes.get('lz4:1')).toBeLessThan(none!);
    expect(sizes.get('gzip:1')).toBeLessThan(none!);
  });
});

/** pid of the real pg_dump under `parent` (not a short-lived `pg_dump --version`), once it dumps. */
async function dumpingPgDump(parent: number): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const { stdout } = await execFileAsync('ps', ['-o', 'pid=,comm=', '--ppid', String(parent)]).catch(() => ({ stdout: '' }));
    for (const [pid, comm] of stdout
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/))) {
      if (comm !== 'pg_dump') continue;
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--dbname=')) return Number(pid);
      } catch {
        /* exited meanwhile */
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no pg_dump found');
}

describe('stream compression under faults', () => {
  it('a killed pg_dump under zstd and gpg (joined by kernel pipes) fails the run and leaves nothing under a final name', async () => {
    const db = await createDatabase(
      'compkill',
      `CREATE TABLE events AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload FROM generate_series(1, 1500000) g;`,
    );
    const bucket = await createBucket('compkill');
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, bucket, encrypt: true, extra: { BACKUP_COMPRESSION: 'zstd:19', BACKUP_GLOBALS: 'false' } });
    const run = spawnCli(['backup'], { env });
    const pgDump = await dumpingPgDump(run.child.pid!);
    const backups = join(dir, 'backups');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const tmp = readdirSync(backups).find((f) => f.includes('.tmp-'));
      if (tmp && statSync(join(backups, tmp)).size > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    process.kill(pgDump, 'SIGKILL');
    const r = await run.done;
    expect(r.code).toBe(13);
    expect(r.stderr).toMatch(/pg_dump was killed by SIGKILL/);
    expect(readdirSync(backups).filter((f) => !f.startsWith('.'))).toEqual([]);
    expect(readdirSync(backups).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const { stdout } = await execFileAsync(
      'aws',
      ['s3', 'ls', `s3://${bucket}/`, '--recursive', '--endpoint-url', services().s3.endpoint],
      { env: awsEnv() },
    ).catch(() => ({ stdout: '' }));
    // Only the run's record (.pgbak-<db>.last-run.json) may be there: no artifact, no manifest.
    const keys = stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.trim().split(/\s+/).pop()!);
    expect(keys.filter((k) => !/\/\.pgbak-[^/]+\.last-run\.json$/.test(k))).toEqual([]);
  });
});
