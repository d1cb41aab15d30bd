import { chmodSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors/index.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { jsonResult } from '../helpers/json-schemas.js';
import { awsEnvOf, createS3User, startS3Server, type S3Server } from '../helpers/s3-server.js';
import { createDatabase, execFileAsync, SAMPLE_SQL, services, tableChecksums, tempDir, uniqueId } from '../helpers/services.js';

/**
 * The least-privilege key of docs/storage.md (put, get, list; no delete) on a real S3 server that
 * enforces bucket policies for its user accounts: versitygw, started here with its IAM. MinIO
 * needs its admin API to make a user, which the tests do not have.
 */

let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3Server({ kind: 'versitygw' });
}, 120_000);
afterAll(async () => {
  await s3?.stop();
});

const BAK = { accessKey: 'pgbak-backup-host', secretKey: `bak-secret-${uniqueId()}${uniqueId()}` };

/** docs/storage.md's policy for `bucket`, granted to the backup host's user. */
function leastPrivilegePolicy(bucket: string): string {
  const principal = { AWS: [BAK.accessKey] };
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: principal,
        Action: ['s3:ListBucket', 's3:ListBucketVersions', 's3:ListBucketMultipartUploads', 's3:GetBucketObjectLockConfiguration'],
        Resource: `arn:aws:s3:::${bucket}`,
      },
      {
        Effect: 'Allow',
        Principal: principal,
        Action: [
          's3:PutObject',
          's3:GetObject',
          's3:GetObjectVersion',
          's3:GetObjectRetention',
          's3:AbortMultipartUpload',
          's3:ListMultipartUploadParts',
          's3:PutObjectRetention',
        ],
        Resource: `arn:aws:s3:::${bucket}/*`,
      },
    ],
  });
}

async function awsRoot(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('aws', [...args, '--endpoint-url', s3.endpoint, '--output', 'json'], { env: awsEnvOf(s3) });
  return stdout;
}

async function bucketKeys(bucket: string): Promise<string[]> {
  const out = JSON.parse((await awsRoot('s3api', 'list-objects-v2', '--bucket', bucket)) || '{}') as { Contents?: { Key: string }[] };
  return (out.Contents ?? []).map((c) => c.Key).sort();
}

/**
 * A pg_dump directory whose pg_dump fails after pg_dumpall (the real one) has stored the globals:
 * pgbak runs the two at once, so this pg_dump waits for its sibling pg_dumpall to start and end
 * (and a second for the upload of its output) before it fails.
 */
function failingPgDumpDir(): string {
  const dir = tempDir('pgbak-failing-pgdump-');
  const real = services().pg.bindir;
  const script = [
    '#!/bin/sh',
    `case "$1" in --version|-V) exec "${real}/pg_dump" "$@";; esac`,
    'i=0; while [ $i -lt 100 ] && ! pgrep -P "$PPID" -x pg_dumpall >/dev/null; do sleep 0.05; i=$((i + 1)); done',
    'i=0; while [ $i -lt 400 ] && pgrep -P "$PPID" -x pg_dumpall >/dev/null; do sleep 0.05; i=$((i + 1)); done',
    'sleep 1',
    'echo "pg_dump: error: simulated failure" >&2',
    'exit 1',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'pg_dump'), script);
  chmodSync(join(dir, 'pg_dump'), 0o755);
  symlinkSync(join(real, 'pg_dumpall'), join(dir, 'pg_dumpall'));
  return dir;
}

describe('a least-privilege backup key (put, get, list; no delete) on versitygw', () => {
  it('backs up and restores; a failed run reports what it could not remove; prune exits 7 naming the missing permission', async () => {
    await createS3User(s3, BAK);
    const db = await createDatabase('leastpriv', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = `lp-${uniqueId()}`;
    const base = backupEnv({
      database: db,
      dir,
      extra: {
        STORAGE_ENDPOINT: s3.endpoint,
        STORAGE_BUCKET: bucket,
        STORAGE_OBJECT_LOCK: 'governance',
        BACKUP_COMPRESSION: 'zstd:3',
        RETENTION_DAYS: '0',
        BACKUP_KEEP_MIN: '1',
        BACKUP_PRUNE: 'false',
      },
    });
    const root = { ...base, STORAGE_ACCESS_KEY: s3.accessKey, STORAGE_SECRET_KEY: s3.secretKey };
    const bak = { ...base, STORAGE_ACCESS_KEY: BAK.accessKey, STORAGE_SECRET_KEY: BAK.secretKey };

    // The bucket's owner prepares it and grants the backup host's key the documented policy.
    const init = await runCli(['init', '--object-lock'], { env: root });
    expect(init.code, init.stderr).toBe(0);
    await awsRoot('s3api', 'put-bucket-policy', '--bucket', bucket, '--policy', leastPrivilegePolicy(bucket));

    // The key really cannot delete.
    const denied = await execFileAsync(
      'aws',
      ['s3api', 'delete-object', '--bucket', bucket, '--key', 'backups/x', '--endpoint-url', s3.endpoint],
      {
        env: awsEnvOf({ ...s3, accessKey: BAK.accessKey, secretKey: BAK.secretKey }),
      },
    ).then(
      () => '',
      (err: { stderr?: string }) => err.stderr ?? '',
    );
    expect(denied).toMatch(/AccessDenied/);

    // 1. A backup with that key succeeds, locked, and restores from the bucket.
    const first = await runCli(['backup', '--json'], { env: bak });
    expect(first.code, first.stderr).toBe(0);
    const firstName = (jsonResult(first.stdout) as { name: string }).name;
    expect((await bucketKeys(bucket)).filter((k) => k.includes(firstName))).toHaveLength(4);
    const target = `${db}_restored`;
    const restored = await runCli(['restore', firstName, '--from', 'remote', '--target', target, '--create'], { env: bak });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await tableChecksums(target)).toEqual(await tableChecksums(db));

    // 2. A run whose dump fails after the globals were uploaded: its clean-up says what it could not remove.
    const failed = await runCli(['backup', '--json'], { env: { ...bak, PG_DUMP_PATH: failingPgDumpDir() } });
    expect(failed.code, failed.stderr).toBe(ExitCode.dumpFailed);
    const failedResult = jsonResult(failed.stdout) as { name: string; warnings: string[] };
    const failedName = failedResult.name;
    expect(failedResult.warnings.join('\n')).toMatch(
      new RegExp(`could not remove s3://${bucket}/backups/${failedName}\\.run\\.json .*lacks the s3:DeleteObjectVersion permission`),
    );
    expect(failedResult.warnings.join('\n')).toMatch(
      new RegExp(`could not remove s3://${bucket}/backups/${failedName}\\.globals\\.sql .*under S3 Object Lock until`),
    );
    // Nothing of the failed run under a final name locally; the good backup untouched in both places.
    expect(readdirSync(join(dir, 'backups')).filter((f) => f.startsWith(failedName))).toEqual([]);
    expect((await bucketKeys(bucket)).filter((k) => k.includes(firstName))).toHaveLength(4);

    // 3. A second good backup, then prune with the same key: exit 7, naming the permission; nothing of the backups lost.
    await new Promise((r) => setTimeout(r, 1100));
    const second = await runCli(['backup'], { env: bak });
    expect(second.code, second.stderr).toBe(0);
    const before = await bucketKeys(bucket);
    const pruned = await runCli(['prune'], { env: bak });
    expect(pruned.code, pruned.stderr).toBe(ExitCode.storage);
    expect(pruned.stderr).toContain('lacks the s3:DeleteObjectVersion permission');
    expect(pruned.stderr).toMatch(/hint: .*least-privilege/);
    expect(pruned.stdout).toContain(`kept ${firstName} in the bucket: under S3 Object Lock until `);
    expect(await bucketKeys(bucket)).toEqual(before);
  }, 300_000);
});
