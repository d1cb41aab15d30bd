import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors/index.js';
import { initBucket, LIFECYCLE_WARNING, PROBE_PREFIX } from '../../src/storage/init-bucket.js';
import { openStorage } from '../../src/storage/job-storage.js';
import { S3Backend } from '../../src/storage/s3-backend.js';
import type { TestS3Server } from '../global-setup.js';
import { jsonResult } from '../helpers/json-schemas.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { awsEnv, execFileAsync, s3Servers, s3Settings, tempDir, uniqueId } from '../helpers/services.js';

const opened: S3Backend[] = [];
afterAll(() => opened.forEach((b) => b.destroy()));

/** The server the suite below runs against (once per S3_TEST_SERVER server). */
let server: TestS3Server;

function s3(bucket: string, prefix = 'backups/', secretKey?: string): S3Backend {
  const backend = new S3Backend(s3Settings(bucket, { prefix, ...(secretKey ? { secretAccessKey: secretKey } : {}) }, server));
  opened.push(backend);
  return backend;
}

async function aws(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('aws', [...args, '--endpoint-url', server.endpoint], { env: awsEnv(server) });
  return stdout;
}

async function bucketExists(bucket: string): Promise<boolean> {
  try {
    await aws('s3api', 'head-bucket', '--bucket', bucket);
    return true;
  } catch {
    return false;
  }
}

describe.each(s3Servers())('initBucket on $kind', (thisServer) => {
  beforeAll(() => {
    server = thisServer;
  });

  it('creates a missing bucket, proves write/read/list/delete, and is idempotent', async () => {
    const bucket = `init-${uniqueId()}`;
    expect(await bucketExists(bucket)).toBe(false);
    const remote = s3(bucket);

    const first = await initBucket(remote);
    expect(first.bucket).toBe('created');
    expect(first.location).toBe(`s3://${bucket}/backups/`);
    expect(first.checks).toEqual([
      { name: 'write', ok: true },
      { name: 'read', ok: true },
      { name: 'list', ok: true },
      { name: 'delete', ok: true },
    ]);
    expect(first.ok).toBe(true);
    expect(first.probeKey.startsWith(PROBE_PREFIX)).toBe(true);
    expect(first.lifecycle).toBeUndefined();
    expect(first.warnings).toEqual([]);
    expect(await bucketExists(bucket)).toBe(true);

    const second = await initBucket(remote);
    expect(second.bucket).toBe('exists');
    expect(second.ok).toBe(true);
    expect(second.probeKey).not.toBe(first.probeKey);
    // No probe left behind by either run.
    expect((await aws('s3api', 'list-objects-v2', '--bucket', bucket, '--output', 'json')).trim()).not.toMatch(/pgbak-probe/);
  });

  if (thisServer.kind === 'versitygw') {
    it('--lifecycle on a server without lifecycle rules (versitygw answers NotImplemented) is a warning, not a failure', async () => {
      const bucket = `life-${uniqueId()}`;
      const report = await initBucket(s3(bucket), { lifecycleDays: 30 });
      expect(report).toMatchObject({ bucket: 'created', ok: true, lifecycle: 'unsupported' });
      expect(report.warnings).toEqual([
        `no lifecycle rule installed: S3 lifecycle configuration is not supported by ${server.endpoint} (NotImplemented). ` +
          'pgbak prune (RETENTION_DAYS with BACKUP_KEEP_MIN) still removes old backups and stale multipart uploads',
      ]);
    });

    it('`pgbak init --lifecycle` against versitygw exits 0, says no rule was installed and why', async () => {
      const bucket = `life-${uniqueId()}`;
      const env = {
        ...backupEnv({ database: 'postgres', dir: tempDir(), bucket }),
        STORAGE_ENDPOINT: server.endpoint,
        STORAGE_ACCESS_KEY: server.accessKey,
        STORAGE_SECRET_KEY: server.secretKey,
      };
      const r = await runCli(['init', '--lifecycle'], { env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`init s3://${bucket}/backups/: bucket created`);
      expect(r.stdout).toContain('  [ok] delete');
      expect(r.stdout).not.toContain('  lifecycle rule installed:');
      expect(r.stdout).toMatch(
        /warning: no lifecycle rule installed: S3 lifecycle configuration is not supported by .* \(NotImplemented\)/,
      );
      expect(r.stdout + r.stderr).not.toContain(server.secretKey);
      const json = await runCli(['init', '--lifecycle', '--json'], { env });
      expect(json.code, json.stderr).toBe(0);
      expect(jsonResult(json.stdout)).toMatchObject({ bucket: 'exists', ok: true, lifecycle: 'unsupported' });
    });
  } else {
    it('installs the lifecycle rule (readable with the aws CLI) and warns that it deletes by age alone', async () => {
      const bucket = `life-${uniqueId()}`;
      const report = await initBucket(s3(bucket), { lifecycleDays: 30 });
      expect(report).toMatchObject({ bucket: 'created', ok: true, lifecycle: 'installed' });
      expect(report.warnings).toContain(LIFECYCLE_WARNING);
      expect(report.warnings.join('\n')).toMatch(/last good backup/);

      const config = JSON.parse(await aws('s3api', 'get-bucket-lifecycle-configuration', '--bucket', bucket, '--output', 'json')) as {
        Rules: { Status: string; Expiration?: { Days?: number }; Filter?: { Prefix?: string }; Prefix?: string }[];
      };
      expect(config.Rules).toHaveLength(1);
      const rule = config.Rules[0]!;
      expect(rule.Status).toBe('Enabled');
      expect(rule.Expiration?.Days).toBe(30);
      expect(rule.Filter?.Prefix ?? rule.Prefix).toBe('backups/');
      // MinIO accepts AbortIncompleteMultipartUpload but does not store it (it removes stale uploads
      // itself), so that half of the rule cannot be read back here.
    });

    it('warns that an empty prefix makes the rule expire the whole bucket', async () => {
      const report = await initBucket(s3(`life-${uniqueId()}`, ''), { lifecycleDays: 7 });
      expect(report.warnings.some((w) => /STORAGE_PREFIX is empty/.test(w))).toBe(true);
    });
  }

  it('refuses a lifecycle rule of 0 days before touching the bucket', async () => {
    const bucket = `life-${uniqueId()}`;
    await expect(initBucket(s3(bucket), { lifecycleDays: 0 })).rejects.toMatchObject({
      exitCode: ExitCode.usage,
      message: expect.stringMatching(/RETENTION_DAYS/),
    });
    expect(await bucketExists(bucket)).toBe(false);
  });

  it('throws a storage error naming the problem when the credentials are wrong', async () => {
    await expect(initBucket(s3(`init-${uniqueId()}`, 'backups/', 'wrong-secret'))).rejects.toMatchObject({
      code: 'storage-credentials',
      exitCode: ExitCode.storage,
    });
  });

  it("takes a job's open storage and prepares its bucket; a storage without a bucket is a usage error", async () => {
    const bucket = `job-${uniqueId()}`;
    {
      await using storage = openStorage({ backupDir: '/nonexistent/pgbak-init', s3: s3Settings(bucket, {}, server) });
      const report = await initBucket(storage);
      expect(report).toMatchObject({ location: `s3://${bucket}/backups/`, bucket: 'created', ok: true });
    }
    expect(await bucketExists(bucket)).toBe(true);
    await using local = openStorage({ backupDir: '/nonexistent/pgbak-init', s3: undefined });
    await expect(initBucket(local)).rejects.toMatchObject({ exitCode: ExitCode.usage });
  });
});
