import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/api/backup.js';
import { prune } from '../../src/api/prune.js';
import { loadJobs } from '../../src/config/config-file.js';
import { parseManifest } from '../../src/catalog/manifest.js';
import { ExitCode } from '../../src/errors/index.js';
import { S3Backend } from '../../src/storage/s3-backend.js';
import { ObjectLockedError, OBJECT_LOCK_MARGIN_DAYS } from '../../src/storage/s3-object-lock.js';
import type { TestS3Server } from '../global-setup.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { jsonResult } from '../helpers/json-schemas.js';
import {
  awsEnv,
  createDatabase,
  execFileAsync,
  s3Servers,
  s3Settings,
  SAMPLE_SQL,
  tableChecksums,
  tempDir,
  uniqueId,
} from '../helpers/services.js';

/**
 * S3 Object Lock (STORAGE_OBJECT_LOCK, `pgbak init --object-lock`) against real S3 servers that
 * enforce it: every object of a backup is stored locked; the same credentials cannot remove a
 * locked version; prune keeps what is locked (with its date) and removes every version of what
 * has left its lock; a bucket without Object Lock fails the run before the dump.
 */

const opened: S3Backend[] = [];
afterAll(() => opened.forEach((b) => b.destroy()));
const DAY = 86_400_000;

async function aws(server: TestS3Server, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('aws', [...args, '--endpoint-url', server.endpoint, '--output', 'json'], { env: awsEnv(server) });
  return stdout;
}

/** Every version and delete marker in the bucket (aws CLI), as `key@version` / `key@marker`. */
async function versions(server: TestS3Server, bucket: string): Promise<{ key: string; id: string; marker: boolean }[]> {
  const out = JSON.parse((await aws(server, 's3api', 'list-object-versions', '--bucket', bucket)) || '{}') as {
    Versions?: { Key: string; VersionId: string }[];
    DeleteMarkers?: { Key: string; VersionId: string }[];
  };
  return [
    ...(out.Versions ?? []).map((v) => ({ key: v.Key, id: v.VersionId, marker: false })),
    ...(out.DeleteMarkers ?? []).map((v) => ({ key: v.Key, id: v.VersionId, marker: true })),
  ];
}

function envFor(server: TestS3Server, database: string, dir: string, bucket: string, extra: Record<string, string> = {}) {
  return backupEnv({
    database,
    dir,
    bucket,
    extra: {
      STORAGE_ENDPOINT: server.endpoint,
      STORAGE_ACCESS_KEY: server.accessKey,
      STORAGE_SECRET_KEY: server.secretKey,
      BACKUP_COMPRESSION: 'zstd:3',
      ...extra,
    },
  });
}

describe.each(s3Servers())('S3 Object Lock on $kind', (server) => {
  it('init --object-lock makes a locked, versioned bucket; a backup stores every object locked; the key cannot remove it; restore gets the data back', async () => {
    const db = await createDatabase('lock', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = `lock-${uniqueId()}`;
    const env = envFor(server, db, dir, bucket, { STORAGE_OBJECT_LOCK: 'governance', RETENTION_DAYS: '2' });

    const init = await runCli(['init', '--object-lock', '--json'], { env });
    expect(init.code, init.stderr).toBe(0);
    expect(jsonResult(init.stdout)).toMatchObject({ bucket: 'created', ok: true, objectLock: 'enabled' });
    const lockConfig = JSON.parse(await aws(server, 's3api', 'get-object-lock-configuration', '--bucket', bucket)) as {
      ObjectLockConfiguration: { ObjectLockEnabled: string };
    };
    expect(lockConfig.ObjectLockConfiguration.ObjectLockEnabled).toBe('Enabled');
    const versioning = JSON.parse(await aws(server, 's3api', 'get-bucket-versioning', '--bucket', bucket)) as { Status?: string };
    expect(versioning.Status).toBe('Enabled');
    // The probe left no version behind.
    expect(await versions(server, bucket)).toEqual([]);

    const before = Date.now();
    const run = await runCli(['backup', '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    const name = (jsonResult(run.stdout) as { name: string }).name;
    const manifest = parseManifest(await readFile(join(dir, 'backups', `${name}.manifest.json`), 'utf8'), 'local manifest');
    expect(manifest.objectLock?.mode).toBe('governance');
    const until = Date.parse(manifest.objectLock!.retainUntil);
    const expected = Math.ceil((Date.parse(manifest.startedAt) + (2 + OBJECT_LOCK_MARGIN_DAYS) * DAY) / 1000) * 1000;
    expect(until).toBe(expected);
    expect(until).toBeGreaterThan(before + 2 * DAY);

    // Every object of the backup is locked until that date; the run record is not (see docs/storage.md).
    const locked = [manifest.artifact.key, manifest.globals!.key, `${name}.manifest.json`];
    for (const key of locked) {
      const head = JSON.parse(await aws(server, 's3api', 'head-object', '--bucket', bucket, '--key', `backups/${key}`)) as {
        ObjectLockMode?: string;
        ObjectLockRetainUntilDate?: string;
      };
      expect(head.ObjectLockMode, key).toBe('GOVERNANCE');
      expect(Date.parse(head.ObjectLockRetainUntilDate!), key).toBe(until);
    }

    // An attacker with the backup host's key: a plain delete only hides the object behind a delete
    // marker; deleting the version itself is refused by the server.
    const artifactKey = `backups/${manifest.artifact.key}`;
    await aws(server, 's3api', 'delete-object', '--bucket', bucket, '--key', artifactKey);
    const afterMarker = (await versions(server, bucket)).filter((v) => v.key === artifactKey);
    const data = afterMarker.find((v) => !v.marker)!;
    const marker = afterMarker.find((v) => v.marker)!;
    expect(data).toBeDefined();
    expect(marker).toBeDefined();
    const refused = await aws(server, 's3api', 'delete-object', '--bucket', bucket, '--key', artifactKey, '--version-id', data.id).then(
      () => undefined,
      (err: { stderr?: string }) => err.stderr ?? String(err),
    );
    expect(refused).toMatch(/AccessDenied|WORM|locked|retention/i);
    // pgbak's own delete (as prune would do it) is refused too, and says until when.
    const remote = new S3Backend(s3Settings(bucket, { objectLock: 'governance' }, server));
    opened.push(remote);
    const err = await remote.delete(manifest.artifact.key).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectLockedError);
    expect((err as ObjectLockedError).retainUntil?.getTime()).toBe(until);
    // The locked version is intact: same bytes as the manifest says.
    const fetched = join(dir, 'fetched');
    await aws(server, 's3api', 'get-object', '--bucket', bucket, '--key', artifactKey, '--version-id', data.id, fetched);
    expect(
      createHash('sha256')
        .update(await readFile(fetched))
        .digest('hex'),
    ).toBe(manifest.artifact.sha256);

    // Recovery: remove the attacker's delete marker (allowed: it holds no data), then restore from
    // the bucket alone and compare the data.
    await aws(server, 's3api', 'delete-object', '--bucket', bucket, '--key', artifactKey, '--version-id', marker.id);
    rmSync(join(dir, 'backups'), { recursive: true, force: true });
    const target = `${db}_restored`;
    const restored = await runCli(['restore', name, '--target', target, '--create'], { env });
    expect(restored.code, restored.stderr).toBe(0);
    expect(await tableChecksums(target)).toEqual(await tableChecksums(db));
  }, 300_000);

  it('prune keeps a locked copy in the bucket with its date (never an error) and removes every version once the lock has passed', async () => {
    const db = await createDatabase('lockprune', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = `lockp-${uniqueId()}`;
    const env = envFor(server, db, dir, bucket, {
      STORAGE_OBJECT_LOCK: 'governance',
      RETENTION_DAYS: '0',
      BACKUP_KEEP_MIN: '1',
      BACKUP_PRUNE: 'false',
    });
    expect((await runCli(['init', '--object-lock'], { env })).code).toBe(0);
    const [job] = loadJobs({ env, cwd: dir, flags: {} }).jobs;

    // Two recent backups: the older of them is past RETENTION_DAYS=0 but locked for a day.
    const first = await runCli(['backup', '--json'], { env });
    expect(first.code, first.stderr).toBe(0);
    const firstName = (jsonResult(first.stdout) as { name: string }).name;
    await new Promise((r) => setTimeout(r, 1100));
    const second = await runCli(['backup', '--json'], { env });
    expect(second.code, second.stderr).toBe(0);
    const secondName = (jsonResult(second.stdout) as { name: string }).name;
    // An old backup whose lock ends in 45 s (its clock says it started RETENTION_DAYS + margin ago).
    const lockEnds = Date.now() + 45_000;
    const oldStart = new Date(lockEnds - OBJECT_LOCK_MARGIN_DAYS * DAY);
    let tick = 0;
    const old = await backup({ job: job!, now: () => new Date(oldStart.getTime() + tick++ * 10) });
    expect(old.status, old.error?.message).toBe('ok');

    // Still locked: kept in the bucket with its date, never an error.
    const early = await prune(job!, {});
    expect(early.errors).toEqual([]);
    expect(early.locked.map((l) => l.backup).sort()).toEqual([old.name, firstName].sort());
    expect(early.decisions.keep.find((d) => d.name === firstName)?.reasons.join(' ')).toMatch(/remote: kept: under S3 Object Lock until /);
    const text = await runCli(['prune'], { env });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`kept ${firstName} in the bucket: under S3 Object Lock until `);
    expect(readdirSync(join(dir, 'backups')).filter((f) => f.startsWith(firstName))).toEqual([]);
    const keysNow = (await versions(server, bucket)).map((v) => v.key);
    expect(keysNow.some((k) => k.includes(firstName))).toBe(true);
    expect(keysNow.some((k) => k.includes(secondName))).toBe(true);

    // Once its lock has passed, the old backup goes from the bucket with every version.
    await new Promise((r) => setTimeout(r, Math.max(0, lockEnds - Date.now() + 1500)));
    const late = await prune(job!, {});
    expect(late.errors).toEqual([]);
    expect(late.locked.map((l) => l.backup)).toEqual([firstName]);
    const left = await versions(server, bucket);
    expect(left.filter((v) => v.key.includes(old.name!))).toEqual([]);
    expect(left.some((v) => v.key.includes(secondName))).toBe(true);
  }, 300_000);

  it('STORAGE_OBJECT_LOCK on a bucket without Object Lock: exit 7 at preflight, before the dump; earlier backups untouched', async () => {
    const db = await createDatabase('nolock', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = `nolock-${uniqueId()}`;
    const plain = envFor(server, db, dir, bucket);
    expect((await runCli(['init'], { env: plain })).code).toBe(0);
    const earlier = await runCli(['backup', '--json'], { env: plain });
    expect(earlier.code, earlier.stderr).toBe(0);
    const localBefore = readdirSync(join(dir, 'backups')).sort();
    const bucketBefore = (await versions(server, bucket)).map((v) => `${v.key}@${v.id}`).sort();

    const run = await runCli(['backup'], { env: { ...plain, STORAGE_OBJECT_LOCK: 'compliance' } });
    expect(run.code).toBe(ExitCode.storage);
    expect(run.stderr).toContain(`STORAGE_OBJECT_LOCK=compliance but bucket "${bucket}" has no Object Lock`);
    expect(run.stderr).toContain('pgbak init --object-lock');
    expect(run.stderr).not.toContain('pg_dump');
    expect(readdirSync(join(dir, 'backups')).sort()).toEqual(localBefore);
    expect((await versions(server, bucket)).map((v) => `${v.key}@${v.id}`).sort()).toEqual(bucketBefore);
    expect(existsSync(join(dir, 'backups'))).toBe(true);
  }, 300_000);

  it("pgbak upload of a backup whose first upload failed stores it locked too, from the backup's start", async () => {
    const db = await createDatabase('lockup', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = `lockup-${uniqueId()}`;
    const env = envFor(server, db, dir, bucket, { STORAGE_OBJECT_LOCK: 'compliance', RETENTION_DAYS: '1', BACKUP_PRUNE: 'false' });
    expect((await runCli(['init', '--object-lock'], { env })).code).toBe(0);
    // The bucket is unreachable during the backup: kept locally, exit 3.
    const down = await runCli(['backup', '--json'], { env: { ...env, STORAGE_ENDPOINT: 'http://127.0.0.1:1', STORAGE_TIMEOUT: '2s' } });
    expect(down.code, down.stderr).toBe(ExitCode.partial);
    const name = (jsonResult(down.stdout) as { name: string }).name;
    const up = await runCli(['upload', name], { env });
    expect(up.code, up.stderr).toBe(0);
    const local = parseManifest(await readFile(join(dir, 'backups', `${name}.manifest.json`), 'utf8'), 'local');
    expect(local.objectLock).toBeUndefined();
    const fetched = join(dir, 'remote-manifest.json');
    await aws(server, 's3api', 'get-object', '--bucket', bucket, '--key', `backups/${name}.manifest.json`, fetched);
    const remote = parseManifest(await readFile(fetched, 'utf8'), 'remote');
    const until = Math.ceil((Date.parse(local.startedAt) + (1 + OBJECT_LOCK_MARGIN_DAYS) * DAY) / 1000) * 1000;
    expect(remote.objectLock).toEqual({ mode: 'compliance', retainUntil: new Date(until).toISOString() });
    for (const key of [local.artifact.key, local.globals!.key, `${name}.manifest.json`]) {
      const head = JSON.parse(await aws(server, 's3api', 'head-object', '--bucket', bucket, '--key', `backups/${key}`)) as {
        ObjectLockMode?: string;
        ObjectLockRetainUntilDate?: string;
      };
      expect(head.ObjectLockMode, key).toBe('COMPLIANCE');
      expect(Date.parse(head.ObjectLockRetainUntilDate!), key).toBe(until);
    }
  }, 300_000);

  it('init --object-lock on an existing bucket without it: enabled where the server allows it (versitygw), else exit 7 and the bucket left as it was (MinIO)', async () => {
    const dir = tempDir();
    const bucket = `late-${uniqueId()}`;
    const env = envFor(server, 'postgres', dir, bucket);
    expect((await runCli(['init'], { env })).code).toBe(0);
    const r = await runCli(['init', '--object-lock'], { env });
    const versioning = JSON.parse((await aws(server, 's3api', 'get-bucket-versioning', '--bucket', bucket)) || '{}') as { Status?: string };
    if (server.kind === 'minio') {
      expect(r.code).toBe(ExitCode.storage);
      expect(r.stderr).toContain(`bucket "${bucket}" exists without Object Lock, and it cannot be enabled`);
      expect(r.stderr).toMatch(/hint: .*new bucket/);
      expect(versioning.Status).toBeUndefined();
    } else {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('Object Lock and versioning enabled');
      expect(versioning.Status).toBe('Enabled');
    }
  }, 300_000);

  it('a put with a retain-until date is locked on the server; after the date the delete removes every version', async () => {
    const bucket = `lockput-${uniqueId()}`;
    const remote = new S3Backend(s3Settings(bucket, { objectLock: 'compliance' }, server));
    opened.push(remote);
    await remote.ensureBucket({ objectLock: true });
    const body = Buffer.from('locked bytes\n');
    const until = new Date(Date.now() + 4_000);
    await remote.put('k.bin', Readable.from([body]), { contentLength: body.length, retainUntil: until });
    await expect(remote.delete('k.bin')).rejects.toBeInstanceOf(ObjectLockedError);
    expect((await versions(server, bucket)).length).toBe(1);
    await new Promise((r) => setTimeout(r, Math.max(0, until.getTime() - Date.now() + 1500)));
    await remote.delete('k.bin');
    expect(await versions(server, bucket)).toEqual([]);
  }, 300_000);

  it('a multipart put with a retain-until date (its parts carry CRC32 here: see the contract test) is stored whole and locked', async () => {
    const MiB = 1024 * 1024;
    const bucket = `lockparts-${uniqueId()}`;
    const settings = s3Settings(bucket, { objectLock: 'compliance' }, server);
    const remote = new S3Backend(settings, { partSize: 5 * MiB });
    opened.push(remote);
    await remote.ensureBucket({ objectLock: true });
    const body = Buffer.alloc(11 * MiB, 'locked parts\n');
    const until = new Date(Date.now() + 4_000);
    await remote.put('p.bin', Readable.from([body]), { retainUntil: until });
    const stored = Buffer.concat(await (await remote.get('p.bin')).toArray());
    expect(createHash('sha256').update(stored).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    // Stored in parts: S3's ETag of a multipart object ends in its part count.
    const head = JSON.parse(await aws(server, 's3api', 'head-object', '--bucket', bucket, '--key', `${settings.prefix}p.bin`)) as {
      ETag: string;
    };
    expect(head.ETag).toMatch(/-3"$/);
    await expect(remote.delete('p.bin')).rejects.toBeInstanceOf(ObjectLockedError);
    await new Promise((r) => setTimeout(r, Math.max(0, until.getTime() - Date.now() + 1500)));
    await remote.delete('p.bin');
    expect(await versions(server, bucket)).toEqual([]);
  }, 300_000);
});
