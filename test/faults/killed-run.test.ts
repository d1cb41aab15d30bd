import { statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli, spawnCli } from '../helpers/cli.js';
import { bigTableSql, tempFiles, waitFor } from '../helpers/processes.js';
import { awsEnv, createBucket, createDatabase, execFileAsync, services, tempDir } from '../helpers/services.js';

/** ~110 MB of hex text: with gzip -9 the dump takes several seconds and needs several 5 MiB parts. */
const BIG_SQL = bigTableSql(1_000_000);

interface Upload {
  Key: string;
  UploadId: string;
  Initiated: string;
}

/** The bucket's open multipart uploads, as the aws CLI lists them (no Prefix: MinIO needs a whole key there). */
async function openUploads(bucket: string, prefix: string): Promise<Upload[]> {
  const { stdout } = await execFileAsync(
    'aws',
    ['s3api', 'list-multipart-uploads', '--bucket', bucket, '--endpoint-url', services().s3.endpoint, '--output', 'json'],
    {
      env: awsEnv(),
    },
  );
  const uploads = (stdout.trim() ? (JSON.parse(stdout) as { Uploads?: Upload[] }).Uploads : undefined) ?? [];
  return uploads.filter((u) => u.Key.startsWith(prefix));
}

describe('a pgbak process killed mid-dump (SIGKILL: OOM killer, power loss)', () => {
  let db: string;
  let bucket: string;
  beforeAll(async () => {
    db = await createDatabase('killed', BIG_SQL);
    bucket = await createBucket('killed');
  });

  it('the next backup removes its temp file; prune aborts its multipart upload (at once: its pid is gone; others after a day)', async () => {
    const dir = tempDir();
    const backups = join(dir, 'backups');
    const prefix = 'killed/';
    const env = backupEnv({
      database: db,
      dir,
      bucket,
      extra: {
        BACKUP_COMPRESSION: 'gzip:9',
        BACKUP_GLOBALS: 'false',
        BACKUP_ROW_COUNTS: 'false',
        STORAGE_PREFIX: prefix,
        STORAGE_PART_SIZE: '5MiB',
      },
    });

    // 1. Kill pgbak itself (not pg_dump) once the upload is a real multipart upload with parts.
    const run = spawnCli(['backup'], { env });
    const temp = await waitFor(() => {
      const t = tempFiles(backups)[0];
      return t && statSync(join(backups, t)).size > 6 * 1024 * 1024 ? t : undefined;
    }, 60_000);
    const [upload] = await waitFor(async () => {
      const open = await openUploads(bucket, prefix);
      return open.length > 0 ? open : undefined;
    }, 60_000);
    run.child.kill('SIGKILL');
    const killed = await run.done;
    expect(killed.signal).toBe('SIGKILL');
    expect(temp).toMatch(new RegExp(`^\\.${db}_\\d{8}_\\d{6}\\.dump\\.tmp-${run.child.pid}-[0-9a-f]{12}$`));
    expect(upload!.Key).toMatch(new RegExp(`^${prefix}${db}_\\d{8}_\\d{6}\\.dump$`));
    // What the killed run left: a dump-sized hidden file and an open upload.
    expect(tempFiles(backups)).toEqual([temp]);
    expect(statSync(join(backups, temp)).size).toBeGreaterThan(6 * 1024 * 1024);

    // 2. A temp file is removed only when it has not been written for a minute (STALE_TEMP_MIN_AGE_MS):
    //    make it that old, as it would be at the next scheduled run.
    const old = new Date(Date.now() - 5 * 60_000);
    utimesSync(join(backups, temp), old, old);
    const next = await runCli(['backup', '--no-prune'], { env: { ...env, BACKUP_COMPRESSION: 'gzip:1' } });
    expect(next.code, next.stderr).toBe(0);
    expect(tempFiles(backups)).toEqual([]);
    expect(next.stderr).toContain(`removed ${join(backups, temp)}`);
    // The open upload is not the next backup's business (--no-prune here).
    expect((await openUploads(bucket, prefix)).map((u) => u.UploadId)).toEqual([upload!.UploadId]);

    // An upload of one of this job's names whose run is not known to be over (another host's, say)
    // stays until it is a day old; uploads under keys that are not this job's names are never touched.
    const s3 = services().s3;
    const elsewhere = `${prefix}${db}_20240101_000000.dump`;
    const foreign = [
      `${prefix}notes.txt`,
      `${prefix}other_db_20240101_000000.dump`,
      `${prefix}sub/${db}_20240101_000000.dump`,
      `other-prefix/${db}_20240101_000000.dump`,
    ];
    for (const key of [elsewhere, ...foreign]) {
      await execFileAsync('aws', ['s3api', 'create-multipart-upload', '--bucket', bucket, '--key', key, '--endpoint-url', s3.endpoint], {
        env: awsEnv(),
      });
    }

    // 3. prune: the killed run's upload goes at once (its run record names a pid gone from this host),
    //    the other one is kept: it is not a day old.
    const early = await runCli(['prune'], { env });
    expect(early.code, early.stderr).toBe(0);
    expect(early.stdout).toContain(`aborted multipart upload of a killed run: ${upload!.Key.slice(prefix.length)}`);
    expect((await openUploads(bucket, '')).map((u) => u.Key).sort()).toEqual([elsewhere, ...foreign].sort());

    // 4. Two days later (a real skewed clock: libfaketime), prune aborts the other one too.
    const later = await runCli(['prune'], { env, prefix: ['faketime', '-f', '+2d'] });
    expect(later.code, later.stderr).toBe(0);
    expect(later.stdout).toContain(`aborted multipart upload of a killed run: ${elsewhere.slice(prefix.length)}`);
    expect((await openUploads(bucket, '')).map((u) => u.Key).sort()).toEqual([...foreign].sort());
    // The good backup of step 2 is still there, locally and in the bucket.
    const list = await runCli(['list', '--json'], { env });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain('"good"');
  });
});
