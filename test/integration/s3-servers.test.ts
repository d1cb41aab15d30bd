import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Backend } from '../../src/storage/s3-backend.js';
import type { TestS3Server } from '../global-setup.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';
import { writeFakeBackup } from '../helpers/fake-backups.js';
import {
  awsEnv,
  createDatabase,
  execFileAsync,
  SAMPLE_SQL,
  s3Servers,
  s3Settings,
  tableChecksums,
  tempDir,
  uniqueId,
} from '../helpers/services.js';

/**
 * The S3 flows that matter, through the real CLI, against every S3 server of the run
 * (S3_TEST_SERVER: MinIO and versitygw by default): init creates the bucket, a backup uploads,
 * list sees the bucket copy, verify checks it, restore streams it back from the bucket, prune
 * removes old backups there and leaves foreign objects alone. The fault tests that kill and
 * restart a server (test/faults/*) run against MinIO only.
 */
describe.each(s3Servers())('S3 flows against $kind', (server: TestS3Server) => {
  const D = 24 * 60 * 60 * 1000;
  let db: string;
  let bucket: string;
  let env: NodeJS.ProcessEnv;
  let dir: string;
  let name: string;
  let remote: S3Backend;

  const aws = async (...args: string[]) =>
    (await execFileAsync('aws', [...args, '--endpoint-url', server.endpoint], { env: awsEnv(server) })).stdout;
  const bucketKeys = async () =>
    (
      (JSON.parse((await aws('s3api', 'list-objects-v2', '--bucket', bucket, '--query', 'Contents[].Key', '--output', 'json')) || 'null') as
        | string[]
        | null) ?? []
    ).sort();
  const cli = (...args: string[]) => runCli(args, { env });

  beforeAll(async () => {
    db = await createDatabase('s3srv', SAMPLE_SQL);
    bucket = `s3srv-${uniqueId()}`;
    dir = tempDir();
    env = {
      ...backupEnv({ database: db, dir, bucket, encrypt: true }),
      STORAGE_ENDPOINT: server.endpoint,
      STORAGE_ACCESS_KEY: server.accessKey,
      STORAGE_SECRET_KEY: server.secretKey,
      BACKUP_KEEP_MIN: '1',
    };
    remote = new S3Backend(s3Settings(bucket, {}, server));
  });
  afterAll(() => remote?.destroy());

  it('pgbak init creates the bucket and proves write, read, list and delete there', async () => {
    // The server really is the one named (the Server header: "MinIO", "VERSITYGW").
    if (server.kind !== 'external') expect((await fetch(server.endpoint)).headers.get('server')?.toLowerCase()).toContain(server.kind);
    const r = await cli('init');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`init s3://${bucket}/backups/: bucket created`);
    for (const check of ['write', 'read', 'list', 'delete']) expect(r.stdout).toContain(`  [ok] ${check}`);
    expect(await bucketKeys()).toEqual([]);
  });

  it('pgbak backup uploads the encrypted dump (same bytes as the local file) and its manifest', async () => {
    const r = await cli('backup', '--json', '--no-prune');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(server.secretKey);
    name = jsonResult<{ name: string }>(r.stdout).name;
    const keys = await bucketKeys();
    expect(keys).toEqual(expect.arrayContaining([`backups/${name}.dump.gpg`, `backups/${name}.manifest.json`]));
    const uploaded = join(tempDir(), 'fetched.dump.gpg');
    await aws('s3', 'cp', '--only-show-errors', `s3://${bucket}/backups/${name}.dump.gpg`, uploaded);
    const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
    expect(sha(uploaded)).toBe(sha(join(dir, 'backups', `${name}.dump.gpg`)));
  });

  it('pgbak list --from remote shows the bucket copy as good', async () => {
    const r = await cli('list', '--from', 'remote', '--json');
    expect(r.code, r.stderr).toBe(0);
    const listed = jsonResults<{ name: string; locations: string[]; state: string; encrypted: boolean }>(r.stdout);
    expect(listed).toEqual([expect.objectContaining({ name, locations: ['remote'], state: 'good', encrypted: true })]);
  });

  it('pgbak verify checks the bucket copy against its manifest', async () => {
    const r = await cli('verify', name, '--json');
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain(`s3://${bucket}/backups/${name}.dump.gpg`);
  });

  it('pgbak restore --from remote streams the backup from the bucket into a new database, exactly', async () => {
    const target = `s3srv_restored_${uniqueId()}`;
    const r = await cli('restore', name, '--from', 'remote', '--target', target, '--create', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(jsonResult(r.stdout)).toMatchObject({ name, locations: ['remote'], paths: [`s3://${bucket}/backups/${name}.dump.gpg`] });
    expect(await tableChecksums(target)).toEqual(await tableChecksums(db));
  });

  it('pgbak prune removes backups older than RETENTION_DAYS from the bucket, keeps the new one and foreign objects', async () => {
    const now = Date.now();
    const old = await Promise.all([40, 50, 60].map((d) => writeFakeBackup(remote, { prefix: db, time: new Date(now - d * D) })));
    // A manual pg_dump someone put there: foreign (no manifest, no run record), never pruned.
    const foreign = join(tempDir(), 'foreign.dump');
    writeFileSync(foreign, 'foreign');
    await aws('s3', 'cp', '--only-show-errors', foreign, `s3://${bucket}/backups/${db}_manual.dump`);
    const before = await bucketKeys();
    const gone = old.flatMap((b) => b.keys.map((k) => `backups/${k}`));
    expect(before).toEqual(expect.arrayContaining(gone));
    const r = await cli('prune', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(await bucketKeys()).toEqual(before.filter((k) => !gone.includes(k)));
    expect(await bucketKeys()).toEqual(
      expect.arrayContaining([`backups/${name}.dump.gpg`, `backups/${name}.manifest.json`, `backups/${db}_manual.dump`]),
    );
  });

  it('pgbak verify fails with exit 9 once the bucket copy differs from its manifest', async () => {
    const file = join(tempDir(), 'tampered.dump.gpg');
    const original = readFileSync(join(dir, 'backups', `${name}.dump.gpg`));
    const tampered = Buffer.from(original);
    tampered[tampered.length >> 1]! ^= 0xff;
    writeFileSync(file, tampered);
    await aws('s3', 'cp', '--only-show-errors', file, `s3://${bucket}/backups/${name}.dump.gpg`);
    const r = await cli('verify', name);
    expect(r.code, r.stderr + r.stdout).toBe(9);
    expect(r.stdout + r.stderr).toMatch(/sha256/);
  });
});
