// Object Lock on the second target (STORAGE_2_OBJECT_LOCK, its own setting): every object of a
// backup in that bucket is stored locked and its manifest records the lock, while the first bucket
// (no lock asked) stays unlocked; the same key cannot remove a locked version; a second bucket
// without Object Lock while it is asked fails the run at preflight, before the dump, naming it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/catalog/manifest.js';
import { ExitCode } from '../../src/errors/index.js';
import type { TestS3Server } from '../global-setup.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { jsonResult } from '../helpers/json-schemas.js';
import { awsEnv, createDatabase, execFileAsync, s3Servers, SAMPLE_SQL, tempDir, uniqueId } from '../helpers/services.js';

// The first server that enforces Object Lock (versitygw in CI; MinIO with S3_TEST_SERVER=minio).
const server: TestS3Server = s3Servers()[0]!;

async function aws(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('aws', [...args, '--endpoint-url', server.endpoint, '--output', 'json'], { env: awsEnv(server) });
  return stdout;
}

function envFor(db: string, dir: string, first: string, second: string, lock2: string) {
  return backupEnv({
    database: db,
    dir,
    extra: {
      STORAGE_ENDPOINT: server.endpoint,
      STORAGE_ACCESS_KEY: server.accessKey,
      STORAGE_SECRET_KEY: server.secretKey,
      STORAGE_BUCKET: first,
      STORAGE_2_ENDPOINT: server.endpoint,
      STORAGE_2_ACCESS_KEY: server.accessKey,
      STORAGE_2_SECRET_KEY: server.secretKey,
      STORAGE_2_BUCKET: second,
      STORAGE_2_NAME: 'vault',
      STORAGE_2_OBJECT_LOCK: lock2,
      RETENTION_DAYS: '2',
    },
  });
}

/** Create `bucket` with `pgbak init` (with Object Lock when asked). */
async function init(db: string, bucket: string, objectLock: boolean): Promise<void> {
  const env = backupEnv({
    database: db,
    dir: tempDir(),
    extra: {
      STORAGE_ENDPOINT: server.endpoint,
      STORAGE_ACCESS_KEY: server.accessKey,
      STORAGE_SECRET_KEY: server.secretKey,
      STORAGE_BUCKET: bucket,
      ...(objectLock ? { STORAGE_OBJECT_LOCK: 'governance' } : {}),
    },
  });
  const run = await runCli(['init', ...(objectLock ? ['--object-lock'] : [])], { env });
  expect(run.code, run.stderr).toBe(0);
}

describe(`Object Lock on the second target (${server.kind})`, () => {
  it('locks every object of the backup in the second bucket only, records it in that manifest; the key cannot remove it', async () => {
    const db = await createDatabase('lock2', SAMPLE_SQL);
    const dir = tempDir();
    const [first, second] = [`plain-${uniqueId()}`, `vault-${uniqueId()}`];
    await init(db, first, false);
    await init(db, second, true);
    const run = await runCli(['backup', '--json'], { env: envFor(db, dir, first, second, 'governance') });
    expect(run.code, run.stderr).toBe(0);
    const name = (jsonResult(run.stdout) as { name: string }).name;

    const local = parseManifest(readFileSync(join(dir, 'backups', `${name}.manifest.json`), 'utf8'), 'local manifest');
    expect(local.objectLock).toBeUndefined();
    const vaultManifest = parseManifest(await aws('s3', 'cp', `s3://${second}/backups/${name}.manifest.json`, '-'), 'vault manifest');
    expect(vaultManifest.objectLock?.mode).toBe('governance');
    const until = Date.parse(vaultManifest.objectLock!.retainUntil);
    expect(until).toBeGreaterThan(Date.now() + 2 * 86_400_000);

    for (const key of [local.artifact.key, local.globals!.key, `${name}.manifest.json`]) {
      const head = JSON.parse(await aws('s3api', 'head-object', '--bucket', second, '--key', `backups/${key}`)) as {
        ObjectLockMode?: string;
        ObjectLockRetainUntilDate?: string;
        VersionId?: string;
      };
      expect(head.ObjectLockMode, key).toBe('GOVERNANCE');
      expect(Date.parse(head.ObjectLockRetainUntilDate!), key).toBe(until);
      const plain = JSON.parse(await aws('s3api', 'head-object', '--bucket', first, '--key', `backups/${key}`)) as {
        ObjectLockMode?: string;
      };
      expect(plain.ObjectLockMode, key).toBeUndefined();
    }
    // The backup host's own key cannot remove the locked version.
    const head = JSON.parse(await aws('s3api', 'head-object', '--bucket', second, '--key', `backups/${local.artifact.key}`)) as {
      VersionId: string;
    };
    await expect(
      aws('s3api', 'delete-object', '--bucket', second, '--key', `backups/${local.artifact.key}`, '--version-id', head.VersionId),
    ).rejects.toThrow(/AccessDenied|locked|retention|WORM/i);
  }, 300_000);

  it('STORAGE_2_OBJECT_LOCK on a second bucket without Object Lock: exit 7 at preflight naming the target, before the dump', async () => {
    const db = await createDatabase('nolock2', SAMPLE_SQL);
    const dir = tempDir();
    const [first, second] = [`plain-${uniqueId()}`, `nolock-${uniqueId()}`];
    await init(db, first, false);
    await init(db, second, false);
    const run = await runCli(['backup'], { env: envFor(db, dir, first, second, 'compliance') });
    expect(run.code, run.stderr).toBe(ExitCode.storage);
    const lines = run.stderr.split('\n');
    const at = lines.findIndex((l) => l.startsWith('pgbak: error: '));
    expect(lines[at]).toBe(
      `pgbak: error: target vault: Object Lock compliance is asked but bucket "${second}" has no Object Lock: its backups could be deleted by anyone holding the key`,
    );
    expect(lines[at + 1]).toMatch(/^hint: create that bucket with Object Lock enabled .*STORAGE_2_OBJECT_LOCK=off/);
    expect(run.stderr).not.toContain('pg_dump');
    expect(readdirSync(join(dir, 'backups')).filter((f) => f.includes('manifest'))).toEqual([]);
  }, 300_000);
});
