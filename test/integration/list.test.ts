import { truncateSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Backend } from '../../src/storage/s3-backend.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { jsonResult, jsonResults, parseEnvelope } from '../helpers/json-schemas.js';
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
  sizeBytes: number;
  encrypted: boolean;
  locations: string[];
  paths: string[];
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
    names.both = jsonResult(both.stdout).name;
    await new Promise((r) => setTimeout(r, 1100)); // one-second names
    const local = await runCli(['backup', '--json', '--no-prune', '--no-upload', '--no-encrypt'], { env });
    expect(local.code, local.stderr).toBe(0);
    names.local = jsonResult(local.stdout).name;
    // An artifact without manifest in the bucket (an interrupted run of another host).
    const leftover = await writeFakeBackup(s3(bucket), { prefix: db, time: new Date('2025-01-01T00:00:00Z'), manifest: 'none' });
    names.leftover = leftover.name;
  });

  const listJson = async (...args: string[]): Promise<Listed[]> => {
    const r = await runCli(['list', '--json', ...args], { env });
    expect(r.code, r.stderr).toBe(0);
    return jsonResults<Listed>(r.stdout);
  };

  it('merges BACKUP_DIR and the bucket by name, newest first, with locations, encryption, size and state', async () => {
    const all = await listJson();
    expect(all.map((b) => b.name)).toEqual([names.local, names.both, names.leftover]);
    expect(all[0]).toMatchObject({ database: db, locations: ['local'], encrypted: false, state: 'good', problems: [], verified: null });
    expect(all[0]!.paths).toEqual([join(dir, 'backups', `${names.local}.dump`)]);
    expect(all[1]).toMatchObject({ database: db, locations: ['local', 'remote'], encrypted: true, state: 'good' });
    expect(all[1]!.paths).toEqual([join(dir, 'backups', `${names.both}.dump.gpg`), `s3://${bucket}/backups/${names.both}.dump.gpg`]);
    expect(all[1]!.sizeBytes).toBe(statSync(join(dir, 'backups', `${names.both}.dump.gpg`)).size);
    // A leftover without manifest is no copy: it has no location; its problem is its location's.
    expect(all[2]).toMatchObject({
      locations: [],
      state: 'incomplete',
      problems: ['remote: no manifest'],
      copies: { remote: { state: 'incomplete', problems: ['no manifest'] } },
    });
    expect(all[1]).toMatchObject({ copies: { local: { state: 'good', problems: [] }, remote: { state: 'good', problems: [] } } });
    expect(Date.parse(all[0]!.time)).toBeGreaterThan(Date.parse(all[1]!.time));

    const where = (b: Listed) => `${b.name}:${b.locations.join('+') || 'none'}`;
    expect((await listJson('--from', 'local')).map(where)).toEqual([`${names.local}:local`, `${names.both}:local`]);
    expect((await listJson('--from', 'remote')).map(where)).toEqual([`${names.both}:remote`, `${names.leftover}:none`]);
    expect((await listJson('--from', 'both')).map(where)).toEqual([
      `${names.local}:local`,
      `${names.both}:local+remote`,
      `${names.leftover}:none`,
    ]);
  });

  it('says why it fails, as JSON too: --from remote without a bucket, an unknown --from', async () => {
    const noBucket = backupEnv({ database: db, dir });
    const r = await runCli(['list', '--json', '--from', 'remote'], { env: noBucket });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('pgbak: error: --from remote: no bucket is configured');
    expect(parseEnvelope(r.stdout)).toMatchObject({ ok: false, results: [], error: { code: 'usage', exitCode: 2 } });
    const bad = await runCli(['list', '--from', 'nowhere'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^pgbak: error: option '--from <where>' argument 'nowhere' is invalid/);
    expect(bad.stderr).toContain('hint: run `pgbak list --help` for usage');
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
    const r = await runCli(['list', '--json', '--from', 'remote'], { env: { ...env, STORAGE_BUCKET: big } });
    expect(r.code, r.stderr).toBe(0);
    const all = jsonResults<Listed>(r.stdout);
    expect(all).toHaveLength(520);
    expect(all.every((b) => b.state === 'good' && b.locations.join() === 'remote')).toBe(true);
    expect(all[0]!.time).toBe(new Date(start + 519 * 3_600_000).toISOString());
    expect(all[519]!.time).toBe(new Date(start).toISOString());
  });

  describe("two jobs sharing backup_dir, each with its own bucket prefix (the docs' example)", () => {
    let cfgDir: string;
    let config: string;
    let cfgEnv: NodeJS.ProcessEnv;
    const made: Record<string, string> = {};
    let dbs: { a: string; b: string };

    beforeAll(async () => {
      dbs = { a: await createDatabase('lsa', SAMPLE_SQL), b: await createDatabase('lsb', SAMPLE_SQL) };
      const shared = await createBucket();
      cfgDir = tempDir();
      config = join(cfgDir, 'pgbak.yaml');
      writeFileSync(
        config,
        [
          'defaults:',
          `  backup_dir: ${join(cfgDir, 'backups')}`,
          `  storage_bucket: ${shared}`,
          '  backup_globals: "false"',
          'jobs:',
          '  - name: a',
          '    database_url_env: A_URL',
          '    storage_prefix: daemon/a/',
          '  - name: b',
          '    database_url_env: B_URL',
          '    storage_prefix: daemon/b/',
          '',
        ].join('\n'),
      );
      const base = backupEnv({ database: db, dir: cfgDir, bucket: shared });
      cfgEnv = { ...base, A_URL: base.DATABASE_URL!.replace(db, dbs.a), B_URL: base.DATABASE_URL!.replace(db, dbs.b) };
      delete cfgEnv.DATABASE_URL;
      delete cfgEnv.STORAGE_BUCKET;
      delete cfgEnv.BACKUP_DIR;
      const r = await runCli(['backup', '--config', config, '--all', '--json', '--no-prune'], { env: cfgEnv });
      expect(r.code, r.stderr).toBe(0);
      for (const x of jsonResults(r.stdout)) made[x.job] = x.name;
      expect(Object.keys(made).sort()).toEqual(['a', 'b']);
    });

    it('lists each backup once, in both places, whichever job listed the bucket copy', async () => {
      const r = await runCli(['list', '--config', config, '--json'], { env: cfgEnv });
      expect(r.code, r.stderr).toBe(0);
      const all = jsonResults<Listed>(r.stdout);
      expect(all.map((b) => b.name).sort()).toEqual([made.a, made.b].sort());
      for (const b of all) {
        expect(b.locations, b.name).toEqual(['local', 'remote']);
        expect(b.paths[1]).toMatch(new RegExp(`/daemon/${b.name === made.a ? 'a' : 'b'}/${b.name}\\.dump$`));
        expect(b.state).toBe('good');
      }
      const table = await runCli(['list', '--config', config], { env: cfgEnv });
      expect(table.stdout.split('\n').find((l) => l.startsWith(made.b!))).toMatch(/ both +good +-$/);
    });

    it("--job NAME lists that job (BACKUP_DIR holds the other job's backups too: local only from here)", async () => {
      const r = await runCli(['list', '--config', config, '--job', 'b', '--json'], { env: cfgEnv });
      expect(r.code, r.stderr).toBe(0);
      const byName = new Map(jsonResults<Listed>(r.stdout).map((b) => [b.name, b]));
      expect(byName.get(made.b!)?.locations).toEqual(['local', 'remote']);
      expect(byName.get(made.a!)?.locations).toEqual(['local']);
      const both = await runCli(['list', '--config', config, '--job', 'b', '--all'], { env: cfgEnv });
      expect(both.code).toBe(2);
      expect(both.stderr).toContain('use either --job NAME or --all, not both');
    });
  });
});
