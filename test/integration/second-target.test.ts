// A second bucket target (STORAGE_2_*): the one dump stream goes to BACKUP_DIR and both buckets in
// the same pass, each with its own run record, manifest (last) and last-run record; the second
// bucket alone restores the data; an unreachable second target makes the run partial naming it,
// with the local backup and the first bucket complete.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { jsonResults } from '../helpers/json-schemas.js';
import { awsKeys, flipByte, snapshot } from '../helpers/restore-fixtures.js';
import { awsEnv, createBucket, createDatabase, execFileAsync, SAMPLE_SQL, services, tempDir, uniqueId } from '../helpers/services.js';

async function awsGet(bucket: string, key: string): Promise<Buffer> {
  const file = join(tempDir(), 'object');
  await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/${key}`, file, '--endpoint-url', services().s3.endpoint, '--only-show-errors'], {
    env: awsEnv(),
  });
  return readFileSync(file);
}

function secondTarget(bucket: string, extra: Record<string, string> = {}): Record<string, string> {
  const s = services().s3;
  return {
    STORAGE_2_ENDPOINT: s.endpoint,
    STORAGE_2_ACCESS_KEY: s.accessKey,
    STORAGE_2_SECRET_KEY: s.secretKey,
    STORAGE_2_BUCKET: bucket,
    STORAGE_2_PREFIX: 'offsite/',
    ...extra,
  };
}

describe('a second target', () => {
  it('streams one backup to BACKUP_DIR and two buckets, each complete with its manifest; the second alone restores the data', async () => {
    const db = await createDatabase('two', SAMPLE_SQL);
    const expected = await snapshot(db);
    const dir = tempDir();
    const first = await createBucket('first');
    const second = await createBucket('second');
    const env = backupEnv({ database: db, dir, bucket: first, extra: secondTarget(second) });
    const run = await runCli(['backup', '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    // pg_dump ran once: one "backup started" and one dump per run.
    expect(run.stderr.match(/backup started/g) ?? []).toHaveLength(1);

    const local = readdirSync(join(dir, 'backups'));
    const manifestFile = local.find((f) => f.endsWith('.manifest.json'))!;
    const manifest = JSON.parse(readFileSync(join(dir, 'backups', manifestFile), 'utf8')) as {
      name: string;
      artifact: { key: string; sha256: string };
    };
    const { name } = manifest;
    for (const [bucket, prefix] of [
      [first, 'backups/'],
      [second, 'offsite/'],
    ] as const) {
      const keys = await awsKeys(bucket, prefix);
      expect(keys).toContain(`${prefix}${name}.manifest.json`);
      expect(keys).toContain(`${prefix}${manifest.artifact.key}`);
      expect(
        keys.some((k) => k.includes('last-run')),
        keys.join(' '),
      ).toBe(true);
      const artifact = await awsGet(bucket, `${prefix}${manifest.artifact.key}`);
      expect(createHash('sha256').update(artifact).digest('hex')).toBe(manifest.artifact.sha256);
      // Each target's manifest is the same manifest.
      expect(JSON.parse((await awsGet(bucket, `${prefix}${name}.manifest.json`)).toString('utf8'))).toEqual(manifest);
    }

    // The second bucket alone (no BACKUP_DIR, no first bucket) restores the data exactly.
    const s = services().s3;
    const offsite = backupEnv({
      database: db,
      dir: tempDir(),
      extra: {
        STORAGE_ENDPOINT: s.endpoint,
        STORAGE_ACCESS_KEY: s.accessKey,
        STORAGE_SECRET_KEY: s.secretKey,
        STORAGE_BUCKET: second,
        STORAGE_PREFIX: 'offsite/',
      },
    });
    const target = `restored_${uniqueId()}`;
    const restored = await runCli(['restore', name, '--from', 'remote', '--target', target, '--create'], { env: offsite });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await snapshot(target)).toEqual(expected);
  });

  it('an unreachable second target: exit 3 naming it, with a hint; BACKUP_DIR and the first bucket complete', async () => {
    const db = await createDatabase('twobad', SAMPLE_SQL);
    const dir = tempDir();
    const first = await createBucket('firstok');
    const env = backupEnv({
      database: db,
      dir,
      bucket: first,
      extra: secondTarget('nowhere', { STORAGE_2_ENDPOINT: 'http://127.0.0.1:1', STORAGE_2_NAME: 'offsite', STORAGE_TIMEOUT: '5s' }),
    });
    const run = await runCli(['backup'], { env });
    expect(run.code, run.stderr).toBe(3);
    const lines = run.stderr.split('\n');
    const at = lines.findIndex((l) => l.startsWith('pgbak: error: '));
    expect(lines[at], run.stderr).toMatch(
      /^pgbak: error: backup complete in BACKUP_DIR, primary, but target offsite failed: S3 endpoint unreachable: http:\/\/127\.0\.0\.1:1/,
    );
    expect(lines[at + 1]).toMatch(/^hint: .*STORAGE_2_ENDPOINT.*pgbak copy \S+ --to offsite$/);
    expect(run.stderr).not.toContain(services().s3.secretKey);

    const local = readdirSync(join(dir, 'backups'));
    const manifestFile = local.find((f) => f.endsWith('.manifest.json'));
    expect(manifestFile, local.join(' ')).toBeDefined();
    const manifest = JSON.parse(readFileSync(join(dir, 'backups', manifestFile!), 'utf8')) as {
      name: string;
      artifact: { key: string; sha256: string };
    };
    const keys = await awsKeys(first, 'backups/');
    expect(keys).toContain(`backups/${manifest.name}.manifest.json`);
    const artifact = await awsGet(first, `backups/${manifest.artifact.key}`);
    expect(createHash('sha256').update(artifact).digest('hex')).toBe(manifest.artifact.sha256);
    expect(
      createHash('sha256')
        .update(readFileSync(join(dir, 'backups', manifest.artifact.key)))
        .digest('hex'),
    ).toBe(manifest.artifact.sha256);
  });

  it('refuses STORAGE_2_SECRET_KEY on the command line', async () => {
    const r = await runCli(['backup', '--set', 'STORAGE_2_SECRET_KEY=topsecret'], { env: backupEnv({ database: 'x', dir: tempDir() }) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('STORAGE_2_SECRET_KEY is refused on the command line');
  });

  it('pgbak copy --missing --to secondary: copies what the target lacks, from BACKUP_DIR or the first bucket, verified, manifest last', async () => {
    const db = await createDatabase('twocopy', SAMPLE_SQL);
    const dir = tempDir();
    const first = await createBucket('cfirst');
    const second = await createBucket('csecond');
    // Two backups made before the second target existed.
    const single = backupEnv({ database: db, dir, bucket: first });
    expect((await runCli(['backup'], { env: single })).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await runCli(['backup'], { env: single })).code).toBe(0);
    const manifests = readdirSync(join(dir, 'backups'))
      .filter((f) => f.endsWith('.manifest.json'))
      .sort()
      .map((f) => JSON.parse(readFileSync(join(dir, 'backups', f), 'utf8')) as { name: string; artifact: { key: string; sha256: string } });
    expect(manifests).toHaveLength(2);
    // The older one is only in the first bucket now: it is copied from there.
    const [older, newer] = manifests as [(typeof manifests)[0], (typeof manifests)[0]];
    for (const f of readdirSync(join(dir, 'backups')).filter((x) => x.startsWith(older.name))) rmSync(join(dir, 'backups', f));

    const env = backupEnv({ database: db, dir, bucket: first, extra: secondTarget(second) });
    const behind = await runCli(['status'], { env });
    expect(behind.code, behind.stdout + behind.stderr).toBe(12);
    expect(behind.stdout + behind.stderr).toContain('only 1 of 2 targets is current: secondary has no good backup');
    const dry = await runCli(['copy', '--missing', '--to', 'secondary', '--dry-run'], { env });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`would copy ${older.name} `);
    expect(dry.stdout).toMatch(new RegExp(`would copy ${older.name} \\(.*\\) from primary to secondary`));
    expect(dry.stdout).toMatch(new RegExp(`would copy ${newer.name} \\(.*\\) from local to secondary`));
    expect(await awsKeys(second)).toEqual([]);

    const run = await runCli(['copy', '--missing', '--to', 'secondary', '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    const results = jsonResults<{ name: string; status: string; from: string }>(run.stdout);
    expect(results.map((r) => [r.name, r.status, r.from])).toEqual([
      [older.name, 'copied', 'primary'],
      [newer.name, 'copied', 'local'],
    ]);
    const keys = await awsKeys(second, 'offsite/');
    for (const m of manifests) {
      expect(keys).toContain(`offsite/${m.name}.manifest.json`);
      const artifact = await awsGet(second, `offsite/${m.artifact.key}`);
      expect(createHash('sha256').update(artifact).digest('hex')).toBe(m.artifact.sha256);
    }
    // list shows which targets hold each backup.
    const listed = jsonResults<{ name: string; targets: string[] }>((await runCli(['list', '--json'], { env })).stdout);
    expect(Object.fromEntries(listed.map((b) => [b.name, b.targets]))).toEqual({
      [older.name]: ['primary', 'secondary'],
      [newer.name]: ['primary', 'secondary'],
    });
    const table = await runCli(['list'], { env });
    expect(table.stdout).toMatch(new RegExp(`${newer.name} .* local\\+primary\\+secondary `));
    expect(table.stdout).toMatch(new RegExp(`${older.name} .* primary\\+secondary `));
    const current = await runCli(['status'], { env });
    expect(current.code, current.stdout + current.stderr).toBe(0);
    const again = await runCli(['copy', newer.name, '--to', 'secondary'], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`${newer.name} is already in secondary; nothing to do`);

    // A local copy that no longer matches its manifest is refused on the way: no manifest lands.
    const third = await createBucket('cthird');
    const corruptEnv = backupEnv({ database: db, dir, extra: secondTarget(third) }); // no first bucket: local is the only source
    const file = join(dir, 'backups', newer.artifact.key);
    flipByte(file, Math.floor(statSync(file).size / 2));
    const bad = await runCli(['copy', newer.name, '--to', 'secondary'], { env: corruptEnv });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/sha256|checksum|does not match/i);
    expect((await awsKeys(third, 'offsite/')).filter((k) => k.endsWith('.manifest.json'))).toEqual([]);

    const unknown = await runCli(['copy', newer.name, '--to', 'tertiary'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--to tertiary: no such target (the targets are primary, secondary)');
  });

  it('prune acts on each target: an expired backup goes from BACKUP_DIR and both buckets', async () => {
    const db = await createDatabase('twoprune', SAMPLE_SQL);
    const dir = tempDir();
    const first = await createBucket('pfirst');
    const second = await createBucket('psecond');
    const env = backupEnv({ database: db, dir, bucket: first, extra: { ...secondTarget(second), BACKUP_PRUNE: 'false' } });
    expect((await runCli(['backup'], { env })).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await runCli(['backup'], { env })).code).toBe(0);
    const names = readdirSync(join(dir, 'backups'))
      .filter((f) => f.endsWith('.manifest.json'))
      .map((f) => f.replace('.manifest.json', ''))
      .sort();
    expect(names).toHaveLength(2);
    const pruneEnv = { ...env, RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '1' };
    const r = await runCli(['prune'], { env: pruneEnv });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const [bucket, prefix] of [
      [first, 'backups/'],
      [second, 'offsite/'],
    ] as const) {
      const keys = await awsKeys(bucket, prefix);
      expect(
        keys.some((k) => k.includes(names[0]!)),
        `${bucket}: ${keys.join(' ')}`,
      ).toBe(false);
      expect(keys).toContain(`${prefix}${names[1]}.manifest.json`);
    }
    expect(readdirSync(join(dir, 'backups')).some((f) => f.startsWith(names[0]!))).toBe(false);
  });
});
