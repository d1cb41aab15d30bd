import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { timestampOf } from '../../src/catalog/backup-name.js';
import { backupEnv, runCli, spawnCli } from '../helpers/cli.js';
import { awsKeys } from '../helpers/restore-fixtures.js';
import { awsEnv, createBucket, execFileAsync, services, sql, tableChecksums, tempDir, uniqueId } from '../helpers/services.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';

/**
 * Issue 14 §1: a backup belongs to one database of one server. Fault run F1 (names that
 * sanitise alike restored each other's backups) and F6 (two writers in the same second shared
 * keys and both reported success).
 */

/** Create a database with a quoted name and `rows` rows of its own. */
async function makeDb(name: string, rows: number): Promise<void> {
  await sql('postgres', `CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  await sql(
    name,
    `CREATE TABLE t (id int PRIMARY KEY, owner text); INSERT INTO t SELECT g, ${sqlText(name)} FROM generate_series(1, ${rows}) g;`,
  );
}
const sqlText = (s: string) => `'${s.replace(/'/g, "''")}'`;

describe('identity: databases whose names sanitise alike', () => {
  // Each pair mapped to one file prefix before: `x y` / `x_y`, `café` / `cafè`, `we'ird db` / `we_ird_db`.
  const id = uniqueId();
  const pairs: [string, string][] = [
    [`arch ${id}`, `arch_${id}`],
    [`caf\u00e9${id}`, `caf\u00e8${id}`],
    [`we'ird db${id}`, `we_ird_db${id}`],
  ];

  it.each(pairs)('"%s" and "%s" keep their own backups, lock, last run, status and restore --latest', async (a, b) => {
    await makeDb(a, 30);
    await makeDb(b, 70);
    const dir = tempDir();
    const bucket = await createBucket('ident');
    const env = (db: string, extra: Record<string, string> = {}) =>
      backupEnv({ database: db, dir, bucket, extra: { BACKUP_GLOBALS: 'false', ...extra } });

    for (const db of [a, b]) {
      const r = await runCli(['backup', '--json'], { env: env(db) });
      expect(r.code, r.stderr).toBe(0);
      await new Promise((res) => setTimeout(res, 1100));
    }
    // Two file prefixes, so two backups each with its own name (and the plain one unchanged).
    const names = readdirSync(join(dir, 'backups')).filter((f) => f.endsWith('.manifest.json'));
    expect(names).toHaveLength(2);
    const prefixes = names.map((n) => n.replace(/_\d{8}_\d{6}\.manifest\.json$/, ''));
    expect(new Set(prefixes).size).toBe(2);
    for (const db of [a, b]) if (/^[A-Za-z0-9_.-]+$/.test(db)) expect(prefixes).toContain(db);
    // Last-run records are separate too.
    expect(readdirSync(join(dir, 'backups')).filter((f) => f.endsWith('.last-run.json'))).toHaveLength(2);

    // restore --latest of each database restores THAT database's backup.
    for (const db of [a, b]) {
      const target = `restored_${uniqueId()}`;
      const r = await runCli(['restore', '--latest', '--target', target, '--create', '--json'], { env: env(db) });
      expect(r.code, r.stderr).toBe(0);
      expect(jsonResult(r.stdout).database).toBe(db);
      expect(await tableChecksums(target)).toEqual(await tableChecksums(db));
    }

    // A failed run of one never makes the other's status fail, nor the reverse.
    const badUrl = env(a).DATABASE_URL!.replace(`:${encodeURIComponent(services().pg.password)}@`, ':wrong-password@');
    const failed = await runCli(['backup'], { env: { ...env(a), DATABASE_URL: badUrl } });
    expect(failed.code).toBe(5);
    const sa = await runCli(['status', '--json'], { env: env(a) });
    const sb = await runCli(['status', '--json'], { env: env(b) });
    expect(sa.code).toBe(12);
    expect(sb.code, sb.stdout).toBe(0);
    expect(jsonResults(sb.stdout)[0]).toMatchObject({ database: b, ok: true, lastRun: { status: 'ok' } });

    // Retention of one never touches the other's backups (a second backup of `a`, then b's prune keeping 1).
    await new Promise((res) => setTimeout(res, 1100));
    expect((await runCli(['backup', '--no-prune'], { env: env(a) })).code).toBe(0);
    const before = await awsKeys(bucket, 'backups/');
    const pruned = await runCli(['prune', '--json'], { env: env(b, { RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '1' }) });
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(jsonResult(pruned.stdout).deleted).toEqual([]);
    expect(await awsKeys(bucket, 'backups/')).toEqual(before);
    expect(before.filter((k) => k.endsWith('.manifest.json'))).toHaveLength(3);
  });
});

describe('identity: two writers to one bucket prefix in the same second', () => {
  it('claim different names, both copies in the bucket match their manifests, and both verify', async () => {
    const db = `hot_${uniqueId()}`;
    await makeDb(db, 5000);
    const bucket = await createBucket('twowriters');
    const dirs = [tempDir(), tempDir()];
    // Encrypted: equal-sized artifacts, so only checksums tell the two runs apart.
    const envs = dirs.map((dir) => backupEnv({ database: db, dir, bucket, encrypt: true, extra: { BACKUP_GLOBALS: 'true' } }));
    // Both hosts' clocks stopped at the same second (libfaketime; timers keep the real monotonic
    // clock): their names would be equal to the second however long each takes to start, which a
    // loaded machine can make straddle a second boundary with running clocks.
    const frozen = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('T', ' ').slice(0, 19);
    const runs = envs.map((env) =>
      spawnCli(['backup', '--json'], {
        env: { ...env, TZ: 'UTC', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
        prefix: ['faketime', '-f', frozen],
      }),
    );
    const results = await Promise.all(runs.map((r) => r.done));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const [n1, n2] = results.map((r) => jsonResult(r.stdout).name as string);
    expect(n1).not.toBe(n2);
    expect(results.map((r) => r.stderr).join('\n')).toMatch(/already claimed by another run/);

    // Every bucket object of each backup matches the sha256 its bucket manifest records.
    const endpoint = ['--endpoint-url', services().s3.endpoint];
    for (const name of [n1!, n2!]) {
      const { stdout: mtext } = await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/backups/${name}.manifest.json`, '-', ...endpoint], {
        env: awsEnv(),
      });
      const m = JSON.parse(mtext) as { artifact: { key: string; sha256: string }; globals: { key: string; sha256: string } };
      for (const f of [m.artifact, m.globals]) {
        const { stdout } = await execFileAsync('aws', ['s3', 'cp', `s3://${bucket}/backups/${f.key}`, '-', ...endpoint], {
          env: awsEnv(),
          encoding: 'buffer',
          maxBuffer: 64 * 1024 * 1024,
        });
        expect(createHash('sha256').update(stdout).digest('hex'), f.key).toBe(f.sha256);
      }
    }
    for (const [i, env] of envs.entries()) {
      const v = await runCli(['verify', '--every'], { env });
      expect(v.code, `${dirs[i]}: ${v.stdout}${v.stderr}`).toBe(0);
      // Each host's own copy names its own run.
      const own = JSON.parse(readFileSync(join(dirs[i]!, 'backups', `${[n1, n2][i]}.manifest.json`), 'utf8'));
      const run = JSON.parse(readFileSync(join(dirs[i]!, 'backups', `${[n1, n2][i]}.run.json`), 'utf8'));
      expect(own.runId).toBe(run.runId);
    }
  });
});

describe('identity: a file already under the name a backup would take', () => {
  it("is never replaced: the run takes the next free second's name", async () => {
    const db = `taken_${uniqueId()}`;
    await makeDb(db, 100);
    const dir = tempDir();
    const backups = join(dir, 'backups');
    mkdirSync(backups, { recursive: true });
    // The guide's script (or an operator's pg_dump) wrote dumps named for the coming seconds.
    const now = Date.now();
    const foreign = Array.from({ length: 8 }, (_, i) => `${db}_${timestampOf(new Date(now + i * 1000))}.dump`);
    for (const f of foreign) writeFileSync(join(backups, f), `foreign dump ${f}\n`);
    const r = await runCli(['backup', '--json'], { env: backupEnv({ database: db, dir, extra: { BACKUP_GLOBALS: 'false' } }) });
    expect(r.code, r.stderr).toBe(0);
    const name = jsonResult(r.stdout).name as string;
    expect(foreign).not.toContain(`${name}.dump`);
    for (const f of foreign) expect(readFileSync(join(backups, f), 'utf8')).toBe(`foreign dump ${f}\n`);
  });
});
