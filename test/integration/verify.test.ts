import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { awsKeys, awsPut, databaseExists, flipByte } from '../helpers/restore-fixtures.js';
import { createBucket, createDatabase, SAMPLE_SQL, tempDir, uniqueId } from '../helpers/services.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';

const EXTRA_SQL = `
CREATE SCHEMA inventory;
CREATE TABLE inventory.items (sku text PRIMARY KEY, qty int NOT NULL, price numeric(10,2));
INSERT INTO inventory.items SELECT 'sku-' || g, g % 17, g * 1.5 FROM generate_series(1, 700) g;
`;

/**
 * A backup that dumps fine and does not restore: the CHECK of aa_b calls a function reading
 * zz_a, whose data pg_restore loads after aa_b's (a classic "the backup was never tested").
 */
const UNRESTORABLE_SQL = `
CREATE TABLE zz_a (id int PRIMARY KEY);
INSERT INTO zz_a VALUES (1), (2);
CREATE FUNCTION a_exists(i int) RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM public.zz_a WHERE id = i) $$;
CREATE TABLE aa_b (a_id int CHECK (public.a_exists(a_id)));
INSERT INTO aa_b VALUES (1), (2);
`;

async function cli(args: string[], env: NodeJS.ProcessEnv) {
  return runCli(args, { env });
}

describe('pgbak verify', () => {
  let db: string;
  let bucket: string;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let name: string;

  beforeAll(async () => {
    db = await createDatabase('vfy', SAMPLE_SQL + EXTRA_SQL);
    bucket = await createBucket();
    dir = tempDir();
    env = backupEnv({ database: db, dir, bucket, encrypt: true });
    const b = await cli(['backup', '--json', '--no-prune'], env);
    expect(b.code, b.stderr).toBe(0);
    name = jsonResult(b.stdout).name;
  });

  it('--restore-test checks both copies, restores into a scratch database it drops, and records the result', async () => {
    const r = await cli(['verify', '--restore-test', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const [v] = jsonResults(r.stdout);
    expect(v).toMatchObject({ name, ok: true, kind: 'restore-test', exitCode: 0 });
    expect(v.checks.map((c: { check: string; ok: boolean }) => `${c.check}:${c.ok}`)).toEqual([
      'local artifact:true',
      'local globals:true',
      'remote artifact:true',
      'remote globals:true',
      'pg_restore:true',
      'tables:true',
      'row counts:true',
    ]);
    expect(v.checks.find((c: { check: string }) => c.check === 'row counts').detail).toBe("3 tables, 6200 rows, all equal to the backup's");
    expect(v.restoreTest.scratchDatabase).toMatch(new RegExp(`^pgbak_verify_${db}_\\d{8}_\\d{6}_[0-9a-f]{8}$`));
    expect(await databaseExists(v.restoreTest.scratchDatabase)).toBe(false);

    // The record sits next to the backup in both places, and list shows it.
    expect(existsSync(join(dir, 'backups', `${name}.verify.json`))).toBe(true);
    expect(await awsKeys(bucket, 'backups/')).toContain(`backups/${name}.verify.json`);
    const list = await cli(['list', '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    const [entry] = jsonResults(list.stdout);
    expect(entry).toMatchObject({
      name,
      locations: ['local', 'remote'],
      state: 'good',
      encrypted: true,
      verified: { ok: true, kind: 'restore-test' },
    });
    expect(entry.verified.durationMs).toBe(v.durationMs);

    // A later checksum-only pass keeps the restore test's record (it proves more) beside the copy
    // it restored from (local); the bucket copy's own record was a checksum one and is renewed.
    const again = await cli(['verify', name, '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(jsonResults(again.stdout)[0]).toMatchObject({
      kind: 'checksum',
      ok: true,
      recordedIn: [expect.stringMatching(new RegExp(`^s3://${bucket}/backups/${name}\\.verify\\.json$`))],
    });
    expect(JSON.parse(readFileSync(join(dir, 'backups', `${name}.verify.json`), 'utf8')).kind).toBe('restore-test');
  });

  it('a manifest whose row count differs from the restored table fails the restore test with exit 14', async () => {
    const copy = tempDir();
    cpSync(join(dir, 'backups'), join(copy, 'backups'), { recursive: true });
    const mPath = join(copy, 'backups', `${name}.manifest.json`);
    const m = JSON.parse(readFileSync(mPath, 'utf8'));
    const orders = m.tables.find((t: { table: string }) => t.table === 'orders');
    orders.rows += 1;
    writeFileSync(mPath, JSON.stringify(m, null, 2));
    const localEnv = backupEnv({ database: db, dir: copy, encrypt: true });

    const r = await cli(['verify', name, '--restore-test'], localEnv);
    expect(r.code, r.stdout + r.stderr).toBe(14);
    expect(r.stdout).toContain(`verify FAILED: ${name} (restore-test`);
    expect(r.stdout).toContain('FAIL row counts: 1 of 3 tables differ: public.orders: 5000 rows, 5001 at backup time');
    expect(r.stdout).toMatch(/ok {3}pg_restore/);

    const list = jsonResults((await cli(['list', '--json'], localEnv)).stdout);
    expect(list[0]).toMatchObject({ name, state: 'corrupt', verified: { ok: false, kind: 'restore-test' } });
  });

  it('a bucket copy that differs from its manifest fails with exit 9, and no restore test runs', async () => {
    const copy = tempDir();
    cpSync(join(dir, 'backups'), join(copy, 'backups'), { recursive: true });
    const prefix = `flipped-${uniqueId()}/`;
    for (const f of [`${name}.manifest.json`, `${name}.globals.sql.gpg`]) await awsPut(join(copy, 'backups', f), bucket, prefix + f);
    const flipped = join(tempDir(), 'a.dump.gpg');
    cpSync(join(copy, 'backups', `${name}.dump.gpg`), flipped);
    flipByte(flipped, 1234);
    await awsPut(flipped, bucket, `${prefix}${name}.dump.gpg`);

    const r = await cli(['verify', name, '--restore-test', '--json'], {
      ...backupEnv({ database: db, dir: copy, bucket, encrypt: true }),
      STORAGE_PREFIX: prefix,
    });
    expect(r.code, r.stderr).toBe(9);
    const [v] = jsonResults(r.stdout);
    expect(v).toMatchObject({ ok: false, kind: 'checksum', exitCode: 9 });
    expect(v.restoreTest).toBeUndefined();
    const failed = v.checks.filter((c: { ok: boolean }) => !c.ok);
    expect(failed).toEqual([{ check: 'remote artifact', ok: false, detail: expect.stringMatching(/sha256 .* differs from the manifest/) }]);
  });

  it('--every verifies every backup of the database', async () => {
    const copy = tempDir();
    const e = backupEnv({ database: db, dir: copy });
    for (let i = 0; i < 2; i++) {
      const b = await cli(['backup', '--no-prune'], e);
      expect(b.code, b.stderr).toBe(0);
      await new Promise((r) => setTimeout(r, 1100)); // names have one-second resolution
    }
    const r = await cli(['verify', '--every', '--json'], e);
    expect(r.code, r.stderr).toBe(0);
    const results = jsonResults(r.stdout);
    expect(results).toHaveLength(2);
    expect(results.every((x: { ok: boolean; recordedIn: string[] }) => x.ok && x.recordedIn.length === 1)).toBe(true);
  });
});

describe('BACKUP_VERIFY=restore-test', () => {
  it('runs the restore test after each backup; a backup that does not restore fails the run with exit 14', async () => {
    const good = await createDatabase('vgood', SAMPLE_SQL);
    const dir = tempDir();
    const ok = await cli(['backup', '--json', '--no-prune'], backupEnv({ database: good, dir, extra: { BACKUP_VERIFY: 'restore-test' } }));
    expect(ok.code, ok.stderr).toBe(0);
    const okName = jsonResult(ok.stdout).name;
    expect(JSON.parse(readFileSync(join(dir, 'backups', `${okName}.verify.json`), 'utf8'))).toMatchObject({
      ok: true,
      kind: 'restore-test',
    });

    const bad = await createDatabase('vbad', UNRESTORABLE_SQL);
    const badDir = tempDir();
    const badEnv = backupEnv({ database: bad, dir: badDir, extra: { BACKUP_VERIFY: 'restore-test' } });
    const r = await cli(['backup', '--json', '--no-prune'], badEnv);
    expect(r.code, r.stderr).toBe(14);
    const result = jsonResult(r.stdout);
    expect(result).toMatchObject({ status: 'failed', error: { code: 'verify-failed', exitCode: 14 } });
    expect(result.error.message).toMatch(/restore test of .* failed: pg_restore: pg_restore exited with code 1/);
    expect(r.stderr).toMatch(/new row for relation "aa_b" violates check constraint|violates check constraint/);
    const list = jsonResults((await cli(['list', '--json'], badEnv)).stdout);
    expect(list[0]).toMatchObject({ name: result.name, state: 'corrupt', verified: { ok: false, kind: 'restore-test' } });
  });
});
