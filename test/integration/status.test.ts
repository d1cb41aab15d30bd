import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupResult } from '../../src/model/backup-result.js';
import type { DatabaseStatus } from '../../src/api/status.js';
import { lastRunRecord, writeLastRun } from '../../src/catalog/last-run.js';
import { S3Backend } from '../../src/storage/s3-backend.js';
import { writeFakeBackup } from '../helpers/fake-backups.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { createBucket, createDatabase, s3Settings, services, tempDir } from '../helpers/services.js';
import { jsonResult, jsonResults, parseEnvelope } from '../helpers/json-schemas.js';

const SMALL_SQL = `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;`;
const H = 3_600_000;

/** Only what a fresh monitoring host has: storage credentials and an empty BACKUP_DIR; no DATABASE_URL. */
function storageOnlyEnv(bucket: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const s = services();
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    STORAGE_ENDPOINT: s.s3.endpoint,
    STORAGE_ACCESS_KEY: s.s3.accessKey,
    STORAGE_SECRET_KEY: s.s3.secretKey,
    STORAGE_BUCKET: bucket,
    BACKUP_DIR: join(tempDir(), 'empty'),
    ...extra,
  };
}

const opened: S3Backend[] = [];
afterAll(() => opened.forEach((b) => b.destroy()));

function bucketBackend(bucket: string): S3Backend {
  const b = new S3Backend(s3Settings(bucket));
  opened.push(b);
  return b;
}

describe('pgbak status', () => {
  let db: string;

  beforeAll(async () => {
    db = await createDatabase('status', SMALL_SQL);
  });

  it('exits 0 after a good backup, from the backup host and from the bucket alone (storage variables only)', async () => {
    const dir = tempDir();
    const bucket = await createBucket('status');
    const env = backupEnv({ database: db, dir, bucket });
    const b = await runCli(['backup', '--json'], { env });
    expect(b.code, b.stderr).toBe(0);
    const backup = jsonResult(b.stdout) as BackupResult;

    const here = await runCli(['status', '--json'], { env });
    expect(here.code, here.stderr).toBe(0);
    const report = parseEnvelope<DatabaseStatus>(here.stdout);
    expect(report).toMatchObject({ command: 'status', ok: true });
    expect(report.error).toBeUndefined();
    expect(report.results).toHaveLength(1);
    const d = report.results[0]!;
    expect(d).toMatchObject({ job: db, database: db, ok: true, reasons: [] });
    expect(d.newestGood).toMatchObject({ name: backup.name, sizeBytes: backup.sizeBytes, locations: ['local', 'remote'] });
    expect(d.newestGood!.ageMs).toBeLessThan(60_000);
    expect(d.lastRun).toMatchObject({ status: 'ok', backup: backup.name, finishedAt: backup.finishedAt });
    expect(d.lastRestoreTest).toBeNull();
    expect(d.sizeTrend.backups.map((x) => x.sizeBytes)).toEqual([backup.sizeBytes]);

    // A fresh host: nothing in BACKUP_DIR, no DATABASE_URL, no database reachable.
    const remote = await runCli(['status', '--json'], { env: storageOnlyEnv(bucket) });
    expect(remote.code, remote.stderr).toBe(0);
    const fromBucket = jsonResults<DatabaseStatus>(remote.stdout);
    expect(fromBucket.map((x) => x.database)).toEqual([db]);
    expect(fromBucket[0]!.newestGood).toMatchObject({ name: backup.name, locations: ['remote'] });
    expect(fromBucket[0]!.lastRun).toMatchObject({ status: 'ok', backup: backup.name });

    const text = await runCli(['status'], { env: storageOnlyEnv(bucket) });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${db}: OK`);
    expect(text.stdout).toContain(backup.name!);
  });

  it('exits 12 when the newest good backup is older than BACKUP_RPO (back-dated backups in the bucket)', async () => {
    const bucket = await createBucket('stale');
    const remote = bucketBackend(bucket);
    const now = Date.now();
    for (const hoursAgo of [31, 19, 7]) {
      await writeFakeBackup(remote, { prefix: 'crm', time: new Date(now - hoursAgo * H), body: 'x'.repeat(2000) });
    }
    const lastRun: BackupResult = {
      status: 'ok',
      job: 'crm',
      database: 'crm',
      name: 'crm_old',
      startedAt: new Date(now - 7 * H).toISOString(),
      finishedAt: new Date(now - 7 * H + 5000).toISOString(),
      durationMs: 5000,
      sizeBytes: 2000,
      sha256: 'a'.repeat(64),
      encrypted: false,
      locations: [],
      error: undefined,
      warnings: [],
    };
    await writeLastRun(remote, lastRunRecord('crm', lastRun, new Date(now - 7 * H)));

    const stale = await runCli(['status'], { env: storageOnlyEnv(bucket) });
    expect(stale.code, stale.stdout).toBe(12);
    // One line per database.
    expect(stale.stderr.split('\n').filter((l) => l.startsWith('pgbak:'))).toEqual([
      expect.stringMatching(/^pgbak: crm: stale: newest good backup crm_\d{8}_\d{6} is 7h( \d+m)? old \(BACKUP_RPO 6h\)$/),
    ]);
    expect(stale.stdout).toContain('crm: PROBLEM');

    // The same backups are fresh enough for a longer RPO.
    const relaxed = await runCli(['status', '--json', '--set', 'BACKUP_RPO=8h'], { env: storageOnlyEnv(bucket) });
    expect(relaxed.code, relaxed.stderr).toBe(0);
    const d = jsonResults<DatabaseStatus>(relaxed.stdout)[0]!;
    expect(d.sizeTrend.backups).toHaveLength(3);
    expect(d.sizeTrend.judgement).toMatchObject({ anomalous: false });
  });

  it('exits 12 when the last run failed, though a fresh good backup exists; also from the bucket alone', async () => {
    const dir = tempDir();
    const bucket = await createBucket('failed');
    const env = backupEnv({ database: db, dir, bucket });
    const good = await runCli(['backup'], { env });
    expect(good.code, good.stderr).toBe(0);
    const { pg } = services();
    const bad = await runCli(['backup'], {
      env: { ...env, DATABASE_URL: `postgresql://${pg.user}:wrong-pw-1234@${pg.host}:${pg.port}/${db}` },
    });
    expect(bad.code).toBe(5);

    for (const statusEnv of [env, storageOnlyEnv(bucket)]) {
      const r = await runCli(['status', '--json'], { env: statusEnv });
      expect(r.code, r.stderr).toBe(12);
      const d = jsonResults<DatabaseStatus>(r.stdout)[0]!;
      expect(d.ok).toBe(false);
      expect(d.newestGood).not.toBeNull();
      expect(d.lastRun).toMatchObject({ status: 'failed', error: { code: 'db-auth-failed' } });
      expect(r.stderr).toMatch(new RegExp(`^pgbak: ${db}: last run failed at \\S+: authentication failed`, 'm'));
      expect(r.stderr).not.toContain('wrong-pw-1234');
    }
  });
});
