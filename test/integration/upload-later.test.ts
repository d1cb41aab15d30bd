// Finish what failed: a partial backup (the bucket was missing, exit 3) is uploaded later with
// `pgbak upload`, checked against its manifest on the way, manifest last; and `pgbak status
// --forget DB` retires the record of one mistyped run so that status stops failing for it.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { awsKeys, flipByte } from '../helpers/restore-fixtures.js';
import { awsEnv, createBucket, createDatabase, execFileAsync, services, tempDir, uniqueId } from '../helpers/services.js';

const SQL = `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g;`;

async function awsGet(bucket: string, key: string): Promise<Buffer> {
  const dir = tempDir();
  const file = join(dir, 'object');
  await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/${key}`, file, '--endpoint-url', services().s3.endpoint, '--only-show-errors'], {
    env: awsEnv(),
  });
  return readFileSync(file);
}

async function makeBucket(name: string): Promise<void> {
  await execFileAsync('aws', ['s3', 'mb', `s3://${name}`, '--endpoint-url', services().s3.endpoint], { env: awsEnv() });
}

describe('pgbak upload', () => {
  it('uploads a partial run’s backup later, verified against its manifest, manifest last, and completes that run', async () => {
    const db = await createDatabase('upl', SQL);
    const dir = tempDir();
    const bucket = `upl-${uniqueId()}`; // not created yet: the run is partial
    const env = backupEnv({ database: db, dir, bucket });
    const partial = await runCli(['backup'], { env });
    expect(partial.code, partial.stderr).toBe(3);
    const statusBefore = await runCli(['status'], { env });
    expect(statusBefore.code).toBe(12);

    await makeBucket(bucket);
    const dry = await runCli(['upload', '--missing', '--dry-run'], { env });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^would upload (upl_\w+) \(/m);
    expect(await awsKeys(bucket)).toEqual([]);

    const up = await runCli(['upload', '--missing'], { env });
    expect(up.code, up.stderr).toBe(0);
    const name = /^uploaded (\S+) \(.*; its partial run is now complete$/m.exec(up.stdout)?.[1];
    expect(name, up.stdout).toBeDefined();

    // The bucket's copy is byte-for-byte the manifest's artifact.
    const manifest = JSON.parse(readFileSync(join(dir, 'backups', `${name}.manifest.json`), 'utf8')) as {
      artifact: { key: string; sha256: string };
    };
    const keys = await awsKeys(bucket, 'backups/');
    expect(keys).toContain(`backups/${name}.manifest.json`);
    expect(keys).toContain(`backups/${manifest.artifact.key}`);
    const remote = await awsGet(bucket, `backups/${manifest.artifact.key}`);
    expect(createHash('sha256').update(remote).digest('hex')).toBe(manifest.artifact.sha256);

    // The run that was partial is now complete: status is fine, and a second upload does nothing.
    const statusAfter = await runCli(['status'], { env });
    expect(statusAfter.code, statusAfter.stdout + statusAfter.stderr).toBe(0);
    const again = await runCli(['upload', name!], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`${name} is already in the bucket; nothing to do`);
    const none = await runCli(['upload', '--missing'], { env });
    expect(none.stdout).toMatch(/nothing to upload/);
  });

  it('refuses a local copy that no longer matches its manifest, and leaves no manifest in the bucket', async () => {
    const db = await createDatabase('uplbad', SQL);
    const dir = tempDir();
    const bucket = `uplbad-${uniqueId()}`;
    const env = backupEnv({ database: db, dir, bucket });
    expect((await runCli(['backup'], { env })).code).toBe(3);
    await makeBucket(bucket);
    const file = join(dir, 'backups', readdirSync(join(dir, 'backups')).find((f) => f.endsWith('.dump'))!);
    flipByte(file, Math.floor(statSync(file).size / 2));

    const up = await runCli(['upload', '--missing'], { env });
    expect(up.code).not.toBe(0);
    expect(up.stdout + up.stderr).toMatch(/sha256/);
    expect((await awsKeys(bucket)).filter((k) => k.endsWith('.manifest.json'))).toEqual([]);
  });

  it('names the closest backups for an unknown NAME, and needs NAMEs or --missing', async () => {
    const db = await createDatabase('uplname', SQL);
    const dir = tempDir();
    const bucket = await createBucket('uplname');
    const env = backupEnv({ database: db, dir, bucket });
    expect((await runCli(['backup', '--no-upload'], { env })).code).toBe(0);
    const unknown = await runCli(['upload', `${db}_20200101_000000`], { env });
    expect(unknown.code).toBe(10);
    expect(unknown.stderr).toMatch(/closest: uplname_/);
    const nothing = await runCli(['upload'], { env });
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/give the NAME of a backup, or --missing/);
  });
});

describe('pgbak status --forget', () => {
  it('retires the record of one mistyped run, so status on a monitoring host stops failing for it', async () => {
    const db = await createDatabase('fgt', SQL);
    const bucket = await createBucket('fgt');
    const good = backupEnv({ database: db, dir: tempDir(), bucket });
    expect((await runCli(['backup'], { env: good })).code).toBe(0);
    const typo = `${db}_typo`;
    const mistyped = { ...good, DATABASE_URL: good.DATABASE_URL!.replace(db, typo) };
    expect((await runCli(['backup'], { env: mistyped })).code).toBe(5);

    // A monitoring host: storage variables only.
    const s = services().s3;
    const monitor = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      STORAGE_ENDPOINT: s.endpoint,
      STORAGE_ACCESS_KEY: s.accessKey,
      STORAGE_SECRET_KEY: s.secretKey,
      STORAGE_BUCKET: bucket,
      BACKUP_DIR: join(tempDir(), 'empty'),
    };
    const before = await runCli(['status'], { env: monitor });
    expect(before.code).toBe(12);
    expect(before.stdout).toContain(`${typo}: `);

    const unknown = await runCli(['status', '--forget', `${db}_typp`], { env: monitor });
    expect(unknown.code).toBe(10);
    expect(unknown.stderr).toContain(`closest: ${typo}`);

    const forget = await runCli(['status', '--forget', typo], { env: monitor });
    expect(forget.code, forget.stderr).toBe(0);
    expect(forget.stdout).toContain(`${typo}: retired in`);
    expect(await awsKeys(bucket, `backups/.pgbak-${typo}.last-run.json`)).toEqual([]);

    const after = await runCli(['status'], { env: monitor });
    expect(after.code, after.stdout + after.stderr).toBe(0);
    expect(after.stdout).not.toContain(typo);
    expect(after.stdout).toContain(`${db}: `);

    // A later run of that database brings it back.
    expect((await runCli(['backup'], { env: mistyped })).code).toBe(5);
    const back = await runCli(['status'], { env: monitor });
    expect(back.code).toBe(12);
    expect(back.stdout).toContain(`${typo}: `);
  });

  it("refuses to forget a configured job's database", async () => {
    const db = await createDatabase('fgtcfg', SQL);
    const env = backupEnv({ database: db, dir: tempDir() });
    expect((await runCli(['backup', '--no-upload'], { env })).code).toBe(0);
    const r = await runCli(['status', '--forget', db], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/configured job's database/);
  });
});
