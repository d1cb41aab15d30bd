import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { timestampOf } from '../../src/catalog/backup-name.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { cloneLocal, cloneRemote } from '../helpers/clone-backup.js';
import { awsKeys, awsPut } from '../helpers/restore-fixtures.js';
import { createBucket, createDatabase, execFileAsync, pgUrl, SAMPLE_SQL, tableChecksums, tempDir, uniqueId } from '../helpers/services.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';

/**
 * Issue 14 §2: retention deletes only what it can prove it made. Fault run F2 (the guide's own
 * dumps deleted as "leftovers"), F3 (a lost local artifact got the intact bucket copy deleted),
 * F4 (RETENTION_DAYS=0 + BACKUP_KEEP_MIN=0: a "successful" run left zero backups).
 */

const DAY = 86_400_000;

describe('retention under faults', () => {
  it("keeps the guide's own manifest-less dumps (locally and in the bucket) and lists them as foreign", async () => {
    const db = await createDatabase('legacy', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = await createBucket('legacy');
    const env = backupEnv({ database: db, dir, bucket, extra: { RETENTION_DAYS: '30' } });
    // Exactly what the guide's script writes: pg_dump -Fc -Z9 into ./backups/db/<db>_YYYYMMDD_HHMMSS.dump.
    const legacy = `${db}_${timestampOf(new Date(Date.now() - 2 * DAY))}.dump`;
    const backups = join(dir, 'backups');
    await execFileAsync('mkdir', ['-p', backups]);
    await execFileAsync('pg_dump', [`--dbname=${pgUrl(db)}`, '--format=custom', '--compress=9', `--file=${join(backups, legacy)}`]);
    await awsPut(join(backups, legacy), bucket, `backups/${legacy}`);

    // A real backup run prunes afterwards (RETENTION_DAYS=30): the legacy dump must survive both places.
    const run = await runCli(['backup'], { env });
    expect(run.code, run.stderr).toBe(0);
    expect(existsSync(join(backups, legacy))).toBe(true);
    expect(await awsKeys(bucket, 'backups/')).toContain(`backups/${legacy}`);

    const dry = await runCli(['prune', '--dry-run'], { env });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`keep\\s+${legacy.replace('.dump', '')}\\s+foreign\\s+not made by pgbak`));
    const list = await runCli(['list', '--json'], { env });
    const entry = (jsonResults(list.stdout) as { name: string; state: string }[]).find((e) => `${e.name}.dump` === legacy);
    expect(entry?.state).toBe('foreign');
    // Even with RETENTION_DAYS=0 it stays.
    const zero = await runCli(['prune'], { env: { ...env, RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '1' } });
    expect(zero.code, zero.stderr).toBe(0);
    expect(existsSync(join(backups, legacy))).toBe(true);
    expect(await awsKeys(bucket, 'backups/')).toContain(`backups/${legacy}`);
  });

  it('a good backup whose local artifact went missing keeps its intact bucket copy, which still restores', async () => {
    const db = await createDatabase('onecopy', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = await createBucket('onecopy');
    const env = backupEnv({ database: db, dir, bucket, extra: { BACKUP_PRUNE: 'false', BACKUP_GLOBALS: 'false' } });
    const made = await runCli(['backup', '--json'], { env });
    expect(made.code, made.stderr).toBe(0);
    const name = jsonResult(made.stdout).name as string;
    const backups = join(dir, 'backups');
    const older = [3, 4].map((d) => cloneLocal(backups, name, -d * DAY));
    for (const d of [3, 4]) await cloneRemote(bucket, 'backups/', name, -d * DAY);
    // A disk error, or an operator moved the file: the 3-day-old local artifact is gone.
    rmSync(join(backups, `${older[0]}.dump`));

    const pruned = await runCli(['prune', '--json'], { env: { ...env, BACKUP_KEEP_MIN: '1' } });
    expect(pruned.code, pruned.stderr).toBe(0);
    const keys = await awsKeys(bucket, 'backups/');
    expect(keys).toEqual(expect.arrayContaining([`backups/${older[0]}.dump`, `backups/${older[0]}.manifest.json`]));
    expect(keys).toEqual(expect.arrayContaining([`backups/${older[1]}.dump`, `backups/${older[1]}.manifest.json`]));
    // The useless local manifest (its artifact is gone) is what goes; the 4-day-old local copy stays.
    expect(existsSync(join(backups, `${older[1]}.dump`))).toBe(true);

    const target = `onecopy_r_${uniqueId()}`;
    const restored = await runCli(['restore', older[0]!, '--target', target, '--create'], { env });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await tableChecksums(target)).toEqual(await tableChecksums(db));
  });

  it('refuses BACKUP_KEEP_MIN=0 before anything is written, and never deletes the backup the run just made', async () => {
    const db = await createDatabase('keepzero', SAMPLE_SQL);
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, extra: { BACKUP_GLOBALS: 'false' } });
    const first = await runCli(['backup', '--json'], { env });
    expect(first.code, first.stderr).toBe(0);
    const before = readdirSync(join(dir, 'backups')).sort();

    const zero = await runCli(['backup'], { env: { ...env, RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '0' } });
    expect(zero.code).toBe(2);
    expect(zero.stderr).toMatch(/BACKUP_KEEP_MIN="0": must be 1 or more/);
    expect(readdirSync(join(dir, 'backups')).sort()).toEqual(before);

    await new Promise((r) => setTimeout(r, 1100));
    const second = await runCli(['backup', '--json'], { env: { ...env, RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '1' } });
    expect(second.code, second.stderr).toBe(0);
    const name = jsonResult(second.stdout).name as string;
    const manifests = readdirSync(join(dir, 'backups')).filter((f) => f.endsWith('.manifest.json'));
    expect(manifests).toEqual([`${name}.manifest.json`]);
    const status = await runCli(['status', '--json'], { env });
    expect(status.code, status.stdout).toBe(0);
    expect(jsonResults(status.stdout)[0].newestGood.name).toBe(name);
  });
});
