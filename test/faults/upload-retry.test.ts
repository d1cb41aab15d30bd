import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/api/backup.js';
import { uploadBackup } from '../../src/api/upload-backup.js';
import { listBackups } from '../../src/catalog/catalog.js';
import { loadJobs } from '../../src/config/config-file.js';
import { isTransientFailure } from '../../src/scheduler/transient-failure.js';
import { createStorage } from '../../src/storage/index.js';
import { backupEnv } from '../helpers/cli.js';
import { awsKeys, flipByte } from '../helpers/restore-fixtures.js';
import { awsEnv, createBucket, createDatabase, execFileAsync, SAMPLE_SQL, services, tempDir } from '../helpers/services.js';

/**
 * Issue 14 §5: the daemon retried a partial run (upload failed) by dumping the database again.
 * The retry now uploads the backup the run already has, checked against its manifest.
 */

function jobFor(env: NodeJS.ProcessEnv, cwd: string) {
  return loadJobs({ env, cwd }).jobs[0]!;
}

describe('retrying the upload of a partial run', () => {
  // The library runs gpg in this process: it reads GNUPGHOME from here (this test file's own worker).
  beforeAll(() => {
    process.env.GNUPGHOME = services().gpg.home;
  });
  it('uploads the local backup (no second dump), verified against its manifest, manifest last', async () => {
    const db = await createDatabase('retry', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = await createBucket('retry');
    const good = backupEnv({ database: db, dir, bucket, encrypt: true });
    // The bucket is unreachable at backup time (nothing listens on port 1).
    const down = { ...good, STORAGE_ENDPOINT: 'http://127.0.0.1:1' };
    const first = await backup({ job: jobFor(down, dir) });
    expect(first.status, first.error?.message).toBe('partial');
    expect(first.error?.exitCode).toBe(3);
    expect(isTransientFailure(first)).toBe(true);
    const backups = join(dir, 'backups');
    const before = readdirSync(backups)
      .filter((f) => !f.startsWith('.'))
      .sort();

    const retried = await uploadBackup({ job: jobFor(good, dir), name: first.name! });
    expect(retried.status, retried.error?.message).toBe('ok');
    expect(retried.name).toBe(first.name);
    expect(retried.locations).toHaveLength(2);
    // No second dump: the local files are the same ones.
    expect(
      readdirSync(backups)
        .filter((f) => !f.startsWith('.'))
        .sort(),
    ).toEqual(before);
    const keys = await awsKeys(bucket, 'backups/');
    expect(keys).toEqual(expect.arrayContaining(before.filter((f) => !f.endsWith('.last-run.json')).map((f) => `backups/${f}`)));
    // The uploaded artifact is byte for byte the one the manifest describes (read with the aws CLI).
    const manifest = JSON.parse(readFileSync(join(backups, `${first.name}.manifest.json`), 'utf8')) as {
      artifact: { key: string; sha256: string };
    };
    const { stdout } = await execFileAsync(
      'aws',
      ['s3', 'cp', `s3://${bucket}/backups/${manifest.artifact.key}`, '-', '--endpoint-url', services().s3.endpoint],
      {
        env: awsEnv(),
        encoding: 'buffer',
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    expect(createHash('sha256').update(stdout).digest('hex')).toBe(manifest.artifact.sha256);
    const storage = createStorage(jobFor(good, dir));
    const [entry] = await listBackups({ local: storage.local, remote: storage.remote });
    storage.remote?.destroy();
    expect(entry).toMatchObject({ name: first.name, state: 'good' });
    expect(entry!.locations.remote?.state).toBe('good');
  });

  it('a local artifact that no longer matches its manifest is not uploaded under its final name', async () => {
    const db = await createDatabase('retrybad', SAMPLE_SQL);
    const dir = tempDir();
    const bucket = await createBucket('retrybad');
    const good = backupEnv({ database: db, dir, bucket, extra: { BACKUP_GLOBALS: 'false' } });
    const first = await backup({ job: jobFor({ ...good, STORAGE_ENDPOINT: 'http://127.0.0.1:1' }, dir) });
    expect(first.status).toBe('partial');
    flipByte(join(dir, 'backups', `${first.name}.dump`), 100);
    const retried = await uploadBackup({ job: jobFor(good, dir), name: first.name! });
    expect(retried.status).toBe('partial');
    expect(retried.error?.message).toMatch(/sha256|differs/);
    const keys = await awsKeys(bucket, 'backups/');
    expect(keys.filter((k) => k.endsWith('.dump') || k.endsWith('.manifest.json'))).toEqual([]);
  });
});
