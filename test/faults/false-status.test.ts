import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli, spawnCli } from '../helpers/cli.js';
import { awsEnvOf, bucketKeys, startS3Server, type S3Server } from '../helpers/minio.js';
import { bigTableSql, waitFor } from '../helpers/processes.js';
import { createDatabase, execFileAsync, sql, tempDir, uniqueId } from '../helpers/services.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';

/** ~50 MB of incompressible rows: with BACKUP_COMPRESSION=none the upload takes seconds, long enough to kill MinIO in it. */
const BIG_SQL = `${bigTableSql(400_000)}
CREATE TABLE marks (v text PRIMARY KEY); INSERT INTO marks VALUES ('old');`;

/**
 * Fault run case 3 / F5: MinIO SIGKILLed mid-upload leaves the backup good locally and a stray
 * object (run record, globals) in the bucket. That stray copy must not make the backup look
 * like it is in "both" places, must not get the intact local copy marked corrupt by verify,
 * and must not make `restore --latest` fall back to the previous backup.
 */
describe('MinIO killed mid-upload (F5)', () => {
  let minio: S3Server;
  beforeAll(async () => {
    // A MinIO of its own on a data dir of its own: killed mid-upload, then started again on the same data.
    minio = await startS3Server({ dataDir: tempDir('pgbak-fault-minio-') });
  });
  afterAll(async () => {
    await minio?.stop();
  });

  it('list, verify and restore --latest judge the local copy on its own', async () => {
    const db = await createDatabase('f5', BIG_SQL);
    const bucket = `f5-${uniqueId()}`;
    await execFileAsync('aws', ['s3', 'mb', `s3://${bucket}`, '--endpoint-url', minio.endpoint], { env: awsEnvOf(minio) });
    const dir = tempDir();
    const env = {
      ...backupEnv({ database: db, dir, extra: { BACKUP_COMPRESSION: 'none', STORAGE_PART_SIZE: '5MiB', BACKUP_PRUNE: 'false' } }),
      STORAGE_ENDPOINT: minio.endpoint,
      STORAGE_ACCESS_KEY: minio.accessKey,
      STORAGE_SECRET_KEY: minio.secretKey,
      STORAGE_BUCKET: bucket,
      STORAGE_PREFIX: 'c3/',
    };
    const older = await runCli(['backup', '--json'], { env, timeoutMs: 300_000 });
    expect(older.code, older.stderr).toBe(0);
    const olderName = jsonResult(older.stdout).name as string;
    await new Promise((r) => setTimeout(r, 1100)); // a new one-second name
    await sql(db, `INSERT INTO marks VALUES ('new')`);

    const run = spawnCli(['backup', '--json'], { env, timeoutMs: 300_000 });
    const backups = join(dir, 'backups');
    await waitFor(() => {
      const tmp = existsSync(backups) && readdirSync(backups).find((f) => f.includes('.tmp-') && f.includes('.dump'));
      return tmp && statSync(join(backups, tmp)).size > 12 * 1024 * 1024 ? tmp : undefined;
    }, 60_000);
    minio.process!.kill('SIGKILL');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(3);
    const name = jsonResult(r.stdout).name as string;
    expect(name).not.toBe(olderName);
    await minio.restart();
    // What the killed upload left in the bucket: never the dump nor the manifest.
    const left = (await bucketKeys(minio, bucket)).filter((k) => k.startsWith(`c3/${name}`));
    expect(left.some((k) => k.endsWith('.dump') || k.endsWith('.manifest.json'))).toBe(false);
    // …but the globals (uploaded before the dump) stay behind: the cleanup's delete met a dead server.
    // (Should a later cleanup retry that delete, put the stray back: it is the state the fault run met.)
    if (!left.includes(`c3/${name}.globals.sql`)) {
      await execFileAsync(
        'aws',
        ['s3', 'cp', join(backups, `${name}.globals.sql`), `s3://${bucket}/c3/${name}.globals.sql`, '--endpoint-url', minio.endpoint],
        { env: awsEnvOf(minio) },
      );
    }

    const list = await runCli(['list', '--json'], { env });
    expect(list.code, list.stderr).toBe(0);
    const listed = jsonResults(list.stdout).find((b: { name: string }) => b.name === name);
    expect(listed).toMatchObject({ locations: ['local'], state: 'good', copies: { local: { state: 'good', problems: [] } } });
    expect(listed.copies.remote.state).toBe('incomplete');
    expect(listed.problems.join('\n')).toMatch(/^remote: no manifest, no artifact/m);
    const text = await runCli(['list'], { env });
    expect(text.stdout.split('\n').find((l) => l.startsWith(name))).toMatch(/ local +good +-$/);

    const verify = await runCli(['verify', name, '--json'], { env });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const [v] = jsonResults(verify.stdout);
    expect(v).toMatchObject({ name, ok: true, exitCode: 0 });
    expect(v.checks.map((c: { check: string; ok: boolean }) => `${c.check}:${c.ok}`)).toEqual([
      'local artifact:true',
      'local globals:true',
    ]);
    expect(v.recordedIn).toEqual([join(backups, `${name}.verify.json`)]);
    expect(await bucketKeys(minio, bucket)).not.toContain(`c3/${name}.verify.json`);
    expect(v.problems).toEqual([expect.stringMatching(/^remote: no manifest, no artifact.*not a complete copy/)]);

    const after = jsonResults((await runCli(['list', '--json'], { env })).stdout).find((b: { name: string }) => b.name === name);
    expect(after).toMatchObject({ state: 'good', copies: { local: { state: 'good' } }, verified: { ok: true } });

    const target = `f5_restored_${uniqueId()}`;
    const restored = await runCli(['restore', '--latest', '--target', target, '--create', '--json'], { env, timeoutMs: 300_000 });
    expect(restored.code, restored.stderr).toBe(0);
    expect(jsonResult(restored.stdout)).toMatchObject({ name, locations: ['local'] });
    expect(await sql(target, `SELECT string_agg(v, ',' ORDER BY v) FROM marks`)).toBe('new,old');

    // The clean-up that met a dead server is done by the next run: its prune removes what the killed
    // upload left in the bucket (pgbak's by its run record; the run is over, its local manifest says
    // so), and keeps the good local copy.
    const next = await runCli(['backup', '--json'], { env: { ...env, BACKUP_PRUNE: 'true' }, timeoutMs: 300_000 });
    expect(next.code, next.stderr).toBe(0);
    expect((await bucketKeys(minio, bucket)).filter((k) => k.startsWith(`c3/${name}.`))).toEqual([]);
    expect(existsSync(join(backups, `${name}.manifest.json`))).toBe(true);
  });
});
