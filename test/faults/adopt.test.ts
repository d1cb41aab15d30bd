import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { timestampOf } from '../../src/catalog/backup-name.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { awsKeys, awsPut } from '../helpers/restore-fixtures.js';
import {
  createBucket,
  createDatabase,
  execFileAsync,
  pgUrl,
  SAMPLE_SQL,
  services,
  tableChecksums,
  tempDir,
  uniqueId,
} from '../helpers/services.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';

/**
 * Issue 14 §2 (fault run F2, case 12b): `pgbak adopt` takes the guide's own manifest-less dumps
 * into the catalog — checked (a custom-format archive of the job's database), checksummed, a
 * manifest marked `adopted` written beside each copy — so they count toward retention and
 * restore like pgbak's own. The dumps are made exactly as the guide's script makes them.
 */

const DAY = 86_400_000;

/** The guide's script: pg_dump --format=custom --compress=9 --file=<BACKUP_DIR>/<db>_<YYYYMMDD_HHMMSS>.dump */
async function guideDump(database: string, file: string): Promise<void> {
  await execFileAsync('pg_dump', [`--dbname=${pgUrl(database)}`, '--format=custom', '--compress=9', `--file=${file}`]);
}

function sha256Of(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

interface ListedJson {
  name: string;
  state: string;
  locations: string[];
  encrypted: boolean;
}

async function listed(env: NodeJS.ProcessEnv, name: string): Promise<ListedJson | undefined> {
  const r = await runCli(['list', '--json'], { env });
  expect(r.code, r.stderr).toBe(0);
  return (jsonResults(r.stdout) as ListedJson[]).find((e) => e.name === name);
}

describe('pgbak adopt', () => {
  it("adopts the guide's dump in BACKUP_DIR and in the bucket: listed good, restores, counted by retention", async () => {
    const db = await createDatabase('legacy', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = await createBucket('adopt');
    const env = backupEnv({ database: db, dir, bucket, extra: { RETENTION_DAYS: '30' } });
    const backups = join(dir, 'backups');
    mkdirSync(backups, { recursive: true });
    const time = new Date(Math.floor((Date.now() - 2 * DAY) / 1000) * 1000);
    const name = `${db}_${timestampOf(time)}`;
    const file = join(backups, `${name}.dump`);
    await guideDump(db, file);
    await awsPut(file, bucket, `backups/${name}.dump`);
    const sha = sha256Of(file);

    // A pgbak backup run prunes (RETENTION_DAYS=30): the foreign dump stays in both places.
    const run = await runCli(['backup'], { env });
    expect(run.code, run.stderr).toBe(0);
    expect(existsSync(file)).toBe(true);
    expect(await awsKeys(bucket, 'backups/')).toContain(`backups/${name}.dump`);
    const dry = await runCli(['prune', '--dry-run'], { env });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`keep\\s+${name}\\s+foreign\\s+not made by pgbak`));

    // --dry-run reads and checks, writes nothing.
    const would = await runCli(['adopt', '--every', '--dry-run'], { env });
    expect(would.code, would.stderr).toBe(0);
    expect(would.stdout).toContain(`would adopt ${name} (local, `);
    expect(would.stdout).toContain(`would adopt ${name} (remote, `);
    expect(existsSync(join(backups, `${name}.manifest.json`))).toBe(false);
    expect(await awsKeys(bucket, 'backups/')).not.toContain(`backups/${name}.manifest.json`);

    const adopted = await runCli(['adopt', '--every'], { env });
    expect(adopted.code, adopted.stderr).toBe(0);
    expect(adopted.stdout).toMatch(new RegExp(`^adopted ${name} \\(local, [\\d.]+ KiB, sha256 ${sha}\\)$`, 'm'));
    expect(adopted.stdout).toMatch(new RegExp(`^adopted ${name} \\(remote, [\\d.]+ KiB, sha256 ${sha}\\)$`, 'm'));
    expect(adopted.stdout).toMatch(/adopted 2 copies of 1 backup/);
    // Only the manifests were written; the dump is byte for byte what it was.
    expect(sha256Of(file)).toBe(sha);
    expect(await awsKeys(bucket, 'backups/')).toEqual(expect.arrayContaining([`backups/${name}.dump`, `backups/${name}.manifest.json`]));
    const manifest = JSON.parse(readFileSync(join(backups, `${name}.manifest.json`), 'utf8'));
    expect(manifest).toMatchObject({
      name,
      database: db,
      startedAt: time.toISOString(),
      artifact: { key: `${name}.dump`, size: readFileSync(file).length, sha256: sha },
      compression: { method: 'gzip', level: 9, by: 'pg_dump' },
      encryption: null,
      globals: null,
      tables: null,
      adopted: { from: `${name}.dump` },
    });
    expect(manifest.adopted.note).toMatch(/UTC/);
    expect(manifest.server.version).toMatch(/^\d+/);

    const entry = await listed(env, name);
    expect(entry).toMatchObject({ state: 'good', locations: ['local', 'remote'] });

    const target = `legacy_r_${uniqueId()}`;
    const restored = await runCli(['restore', name, '--target', target, '--create'], { env });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await tableChecksums(target)).toEqual(await tableChecksums(db));

    // Nothing is adopted twice.
    const again = await runCli(['adopt', '--every'], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/nothing adopted/);
    const named = await runCli(['adopt', name], { env });
    expect(named.code, named.stderr).toBe(0);
    expect(named.stdout).toContain(`skipped ${name}: not foreign`);

    // Retention now counts it as a good backup.
    const pruneDry = await runCli(['prune', '--dry-run'], { env });
    expect(pruneDry.code, pruneDry.stderr).toBe(0);
    expect(pruneDry.stdout).toMatch(new RegExp(`keep\\s+${name}\\s+good\\s+newest 3`));
  });

  it("refuses a dump of another database renamed to the job's prefix, and a file that is not an archive; writes nothing", async () => {
    const db = await createDatabase('shop', SAMPLE_SQL);
    const other = await createDatabase('other', 'CREATE TABLE x (id int); INSERT INTO x VALUES (1);');
    const dir = tempDir();
    const bucket = await createBucket('adopt-other');
    const env = backupEnv({ database: db, dir, bucket });
    const backups = join(dir, 'backups');
    mkdirSync(backups, { recursive: true });
    const wrong = `${db}_${timestampOf(new Date(Date.now() - 3 * DAY))}`;
    await guideDump(other, join(backups, `${wrong}.dump`));
    await awsPut(join(backups, `${wrong}.dump`), bucket, `backups/${wrong}.dump`);
    const junk = `${db}_${timestampOf(new Date(Date.now() - 4 * DAY))}`;
    writeFileSync(join(backups, `${junk}.dump`), 'not a pg_dump archive\n');
    const good = `${db}_${timestampOf(new Date(Date.now() - 5 * DAY))}`;
    await guideDump(db, join(backups, `${good}.dump`));
    // A good local copy whose bucket copy is junk: adopting only the local one would make pgbak
    // claim the junk as its own (and retention delete it later), so neither is adopted.
    const split = `${db}_${timestampOf(new Date(Date.now() - 6 * DAY))}`;
    await guideDump(db, join(backups, `${split}.dump`));
    writeFileSync(join(dir, 'junk'), 'junk\n');
    await awsPut(join(dir, 'junk'), bucket, `backups/${split}.dump`);

    const r = await runCli(['adopt', wrong], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`is a dump of database "${other}", not of "${db}"`);
    expect(r.stderr).toMatch(/^hint: /m);
    const j = await runCli(['adopt', junk], { env });
    expect(j.code).toBe(9);
    expect(j.stderr).toMatch(/is not a PostgreSQL archive pg_restore can read/);

    const sp = await runCli(['adopt', split], { env });
    expect(sp.code).toBe(9);
    expect(sp.stdout).toContain(`skipped ${split} (local): not adopted although it checks out`);

    // --all: the refusals make it fail, the good dump is still adopted.
    const all = await runCli(['adopt', '--every'], { env });
    expect(all.code).not.toBe(0);
    expect(all.stdout).toMatch(new RegExp(`^adopted ${good} \\(local, `, 'm'));
    expect(all.stderr).toContain(`"${other}"`);

    for (const n of [wrong, junk, split]) expect(existsSync(join(backups, `${n}.manifest.json`)), n).toBe(false);
    expect((await awsKeys(bucket, 'backups/')).filter((k) => k.endsWith('.manifest.json'))).toEqual([]);
    expect((await listed(env, wrong))?.state).toBe('foreign');
    expect((await listed(env, junk))?.state).toBe('foreign');
    expect((await listed(env, split))?.state).toBe('foreign');
    expect((await listed(env, good))?.state).toBe('good');
  });

  it('adopts a gpg-encrypted dump (decrypted in the stream to read its header) and restores it', async () => {
    const s = services();
    const db = await createDatabase('secret', SAMPLE_SQL);
    const dir = tempDir();
    const env = backupEnv({ database: db, dir });
    const backups = join(dir, 'backups');
    mkdirSync(backups, { recursive: true });
    const name = `${db}_${timestampOf(new Date(Date.now() - 2 * DAY))}`;
    const plain = join(dir, 'plain.dump');
    await guideDump(db, plain);
    await execFileAsync(
      'gpg',
      [
        '--batch',
        '--no-tty',
        '--trust-model',
        'always',
        '--encrypt',
        '--recipient',
        s.gpg.email,
        '--output',
        join(backups, `${name}.dump.gpg`),
        plain,
      ],
      {
        env: { ...process.env, GNUPGHOME: s.gpg.home },
      },
    );

    const r = await runCli(['adopt', name, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const result = jsonResult(r.stdout);
    expect(result.adopted).toHaveLength(1);
    const manifest = JSON.parse(readFileSync(join(backups, `${name}.manifest.json`), 'utf8'));
    expect(manifest.encryption).toEqual({ method: 'gpg', recipient: 'unknown (adopted)', fingerprint: s.gpg.fingerprint });
    expect(manifest.artifact).toMatchObject({ key: `${name}.dump.gpg`, sha256: sha256Of(join(backups, `${name}.dump.gpg`)) });
    expect(manifest.compression).toMatchObject({ method: 'gzip', level: 9 });
    expect(await listed(env, name)).toMatchObject({ state: 'good', encrypted: true });

    const target = `secret_r_${uniqueId()}`;
    const restored = await runCli(['restore', name, '--target', target, '--create'], { env });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await tableChecksums(target)).toEqual(await tableChecksums(db));
  });
});
