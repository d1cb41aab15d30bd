import { truncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Backend } from '../../src/storage/s3-backend.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { mapLimit, writeFakeBackup } from '../helpers/fake-backups.js';
import { createBucket, createDatabase, SAMPLE_SQL, s3Settings, tempDir } from '../helpers/services.js';

const opened: S3Backend[] = [];
afterAll(() => opened.forEach((b) => b.destroy()));

function s3(bucket: string): S3Backend {
  const b = new S3Backend(s3Settings(bucket));
  opened.push(b);
  return b;
}

interface Listed {
  name: string;
  database: string | undefined;
  time: string;
  size: number;
  encrypted: boolean;
  where: string;
  state: string;
  problems: string[];
  verified: unknown;
}

describe('pgbak list', () => {
  let db: string;
  let bucket: string;
  let env: NodeJS.ProcessEnv;
  let dir: string;
  const names: Record<string, string> = {};

  beforeAll(async () => {
    db = await createDatabase('lst', SAMPLE_SQL);
    bucket = await createBucket();
    dir = tempDir();
    env = backupEnv({ database: db, dir, bucket, encrypt: true });
    const both = await runCli(['backup', '--json', '--no-prune'], { env });
    expect(both.code, both.stderr).toBe(0);
    names.both = JSON.parse(both.stdout).name;
    await new Promise((r) => setTimeout(r, 1100)); // one-second names
    const local = await runCli(['backup', '--json', '--no-prune', '--no-upload', '--no-encrypt'], { env });
    expect(local.code, local.stderr).toBe(0);
    names.local = JSON.parse(local.stdout).name;
    // An artifact without manifest in the bucket (an interrupted run of another host).
    const leftover = await writeFakeBackup(s3(bucket), { prefix: db, time: new Date('2025-01-01T00:00:00Z'), manifest: 'none' });
    names.leftover = leftover.name;
  });

  const listJson = async (...args: string[]): Promise<Listed[]> => {
    const r = await runCli(['list', '--json', ...args], { env });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Listed[];
  };

  it('merges BACKUP_DIR and the bucket by name, newest first, with where, encryption, size and state', async () => {
    const all = await listJson();
    expect(all.map((b) => b.name)).toEqual([names.local, names.both, names.leftover]);
    expect(all[0]).toMatchObject({ database: db, where: 'local', encrypted: false, state: 'good', problems: [], verified: null });
    expect(all[1]).toMatchObject({ database: db, where: 'both', encrypted: true, state: 'good' });
    expect(all[1]!.size).toBe(statSync(join(dir, 'backups', `${names.both}.dump.gpg`)).size);
    // A leftover without manifest is no copy: WHERE names no location; its problem is its location's.
    expect(all[2]).toMatchObject({
      where: 'none',
      state: 'incomplete',
      problems: ['remote: no manifest'],
      copies: { remote: { state: 'incomplete', problems: ['no manifest'] } },
    });
    expect(all[1]).toMatchObject({ copies: { local: { state: 'good', problems: [] }, remote: { state: 'good', problems: [] } } });
    expect(Date.parse(all[0]!.time)).toBeGreaterThan(Date.parse(all[1]!.time));

    expect((await listJson('--local')).map((b) => `${b.name}:${b.where}`)).toEqual([`${names.local}:local`, `${names.both}:local`]);
    expect((await listJson('--remote')).map((b) => `${b.name}:${b.where}`)).toEqual([`${names.both}:remote`, `${names.leftover}:none`]);
  });

  it('prints a table for people, and marks a truncated artifact corrupt', async () => {
    const file = join(dir, 'backups', `${names.local}.dump`);
    truncateSync(file, statSync(file).size - 10);
    const r = await runCli(['list'], { env });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME +DATABASE +TIME +SIZE +ENCRYPTED +WHERE +STATE +LAST VERIFIED$/);
    expect(lines.find((l) => l.startsWith(names.both!))).toMatch(/ yes +both +good +-$/);
    expect(lines.find((l) => l.startsWith(names.local!))).toMatch(/ no +local +corrupt +-$/);
    expect(r.stdout).toMatch(new RegExp(`${names.local}: local: ${names.local}\\.dump is \\d+ bytes, manifest says \\d+`));
  });

  it('lists a bucket with more than 1000 objects completely', async () => {
    const big = await createBucket();
    const backend = s3(big);
    const start = Date.parse('2024-06-01T00:00:00Z');
    await mapLimit(
      Array.from({ length: 520 }, (_, i) => i),
      16,
      (i) => writeFakeBackup(backend, { prefix: 'bulk', time: new Date(start + i * 3_600_000) }),
    );
    const r = await runCli(['list', '--json', '--remote'], { env: { ...env, STORAGE_BUCKET: big } });
    expect(r.code, r.stderr).toBe(0);
    const all = JSON.parse(r.stdout) as Listed[];
    expect(all).toHaveLength(520);
    expect(all.every((b) => b.state === 'good' && b.where === 'remote')).toBe(true);
    expect(all[0]!.time).toBe(new Date(start + 519 * 3_600_000).toISOString());
    expect(all[519]!.time).toBe(new Date(start).toISOString());
  });
});
