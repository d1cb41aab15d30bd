import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli, spawnCli } from '../helpers/cli.js';
import { startS3Server, type S3Server } from '../helpers/minio.js';
import { bigTableSql, cmdlineOf, dumpingPgDump, waitFor } from '../helpers/processes.js';
import { createDatabase, execFileAsync, services, tempDir } from '../helpers/services.js';
import { jsonResult } from '../helpers/json-schemas.js';

/** Rows of random-looking text: gzip -9 takes a few seconds on them, long enough to interrupt. */
const BIG_SQL = bigTableSql(400_000, { withTime: true });

/** Files under a final backup name (not temp files, not the lock). */
function finalFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.')) : [];
}

describe('pgbak backup under faults', () => {
  let db: string;
  beforeAll(async () => {
    db = await createDatabase('big', BIG_SQL);
  });

  it('a killed pg_dump fails the run, leaves nothing under a final name and keeps earlier backups', async () => {
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, extra: { BACKUP_COMPRESSION: 'gzip:1', BACKUP_GLOBALS: 'false' } });
    const first = await runCli(['backup', '--json'], { env });
    expect(first.code, first.stderr).toBe(0);
    const before = finalFiles(join(dir, 'backups')).sort();
    const beforeSizes = before.map((f) => statSync(join(dir, 'backups', f)).size);
    await new Promise((r) => setTimeout(r, 1100)); // a new timestamp for the second run

    const run = spawnCli(['backup'], { env: { ...env, BACKUP_COMPRESSION: 'gzip:9' } });
    const pgDump = await waitFor(() => dumpingPgDump(run.child.pid!), 30_000);
    // Secrets never reach argv: pg_dump's command line has no password.
    const cmdline = cmdlineOf(pgDump);
    expect(cmdline).toContain('--dbname=');
    expect(cmdline).not.toContain(services().pg.password);
    // Wait until data is flowing into the temp file, then kill pg_dump mid-stream.
    await waitFor(() => {
      const tmp = readdirSync(join(dir, 'backups')).find((f) => f.includes('.tmp-'));
      return tmp && statSync(join(dir, 'backups', tmp)).size > 64 * 1024 ? tmp : undefined;
    }, 30_000);
    process.kill(pgDump, 'SIGKILL');
    const r = await run.done;
    expect(r.code).toBe(13);
    expect(r.stderr).toMatch(/pg_dump was killed by SIGKILL/);
    const after = finalFiles(join(dir, 'backups')).sort();
    expect(after).toEqual(before);
    expect(after.map((f) => statSync(join(dir, 'backups', f)).size)).toEqual(beforeSizes);
    expect(readdirSync(join(dir, 'backups')).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a second concurrent run of the same database exits 11 naming the running pid', async () => {
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, extra: { BACKUP_COMPRESSION: 'gzip:9', BACKUP_GLOBALS: 'false' } });
    const first = spawnCli(['backup'], { env });
    await waitFor(() => dumpingPgDump(first.child.pid!), 30_000);
    const second = await runCli(['backup'], { env });
    expect(second.code).toBe(11);
    expect(second.stderr).toContain(`another backup of ${db} is running (pid ${first.child.pid}`);
    const r = await first.done;
    expect(r.code, r.stderr).toBe(0);
  });

  describe('with a MinIO of its own', () => {
    let s3: S3Server;
    beforeAll(async () => {
      s3 = await startS3Server();
    });
    afterAll(async () => {
      await s3.stop();
    });

    it('MinIO killed mid-upload: the local backup and its manifest are kept and the run exits 3', async () => {
      const dir = tempDir();
      const awsEnv = {
        ...process.env,
        AWS_ACCESS_KEY_ID: s3.accessKey,
        AWS_SECRET_ACCESS_KEY: s3.secretKey,
        AWS_DEFAULT_REGION: 'us-east-1',
      };
      await execFileAsync('aws', ['s3', 'mb', 's3://faults', '--endpoint-url', s3.endpoint], { env: awsEnv });
      const env = {
        ...backupEnv({ database: db, dir, extra: { BACKUP_COMPRESSION: 'none', BACKUP_GLOBALS: 'false', STORAGE_PART_SIZE: '5MiB' } }),
        STORAGE_ENDPOINT: s3.endpoint,
        STORAGE_ACCESS_KEY: s3.accessKey,
        STORAGE_SECRET_KEY: s3.secretKey,
        STORAGE_BUCKET: 'faults',
      };
      const run = spawnCli(['backup', '--json'], { env });
      await waitFor(() => {
        const tmp = existsSync(join(dir, 'backups')) && readdirSync(join(dir, 'backups')).find((f) => f.includes('.tmp-'));
        return tmp && statSync(join(dir, 'backups', tmp)).size > 6 * 1024 * 1024 ? tmp : undefined;
      }, 30_000);
      s3.process!.kill('SIGKILL');
      const r = await run.done;
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/upload failed/);
      const result = jsonResult(r.stdout);
      expect(finalFiles(join(dir, 'backups')).sort()).toEqual([
        `${result.name}.dump`,
        `${result.name}.manifest.json`,
        `${result.name}.run.json`,
      ]);
    });
  });
});
