import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/cli.js';
import { pitrSetup, startArchivingCluster, switchAndWaitArchived, type PitrSetup } from '../helpers/pitr.js';
import { psql, type PgCluster } from '../helpers/postgres-cluster.js';
import { awsEnv, services, tempDir } from '../helpers/services.js';

const execFileAsync = promisify(execFile);

/** `name{a="x",…} value` lines → value of the sample with exactly these labels. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (m && m[1] === name && m[2]!.split(',').sort().join(',') === want) return Number(m[3]);
  }
  return undefined;
}

/**
 * WAL monitoring over a real archiving cluster (archive_mode=on, wal-push into MinIO, gpg): a
 * failing wal-push is counted, `status` and the metrics (METRICS_TEXTFILE and a daemon's /metrics)
 * report the archive's age against WAL_RPO and the failures, and `verify --restore-test` restores
 * the newest base backup, recovers it to the end of the archive and queries it — or names the
 * missing segment when one is gone.
 */
describe('WAL monitoring: status, metrics and the restore test of a base backup (real PostgreSQL, MinIO, gpg)', () => {
  let setup: PitrSetup;
  let pg: PgCluster;
  let sysid: string;
  let baseName: string;
  let textfile: string;
  let segment: string;
  const job = () => ({ job: 'postgres', database: 'postgres' });
  const status = async () => {
    const r = await setup.run(['status', '--env-file', setup.envFile, '--json'], { env: { DATABASE_URL: pg.url('postgres') } });
    return JSON.parse(r.stdout) as {
      results: {
        warnings: string[];
        lastRestoreTest: { backup: string; ok: boolean; durationMs: number } | null;
        wal: {
          newestSegment: string;
          ageMs: number;
          rpoMs: number;
          failures: { count: number; lastFile: string; lastError: string; failing: boolean } | null;
          newestBaseBackupAt: string | null;
        };
      }[];
    };
  };

  beforeAll(async () => {
    setup = await pitrSetup();
    textfile = join(setup.dir, 'metrics', 'pgbak.prom');
    setup.writeEnv({ METRICS_TEXTFILE: textfile, WAL_RPO: '10m' });
    pg = await startArchivingCluster(setup);
    sysid = await psql(pg, 'postgres', 'SELECT system_identifier FROM pg_control_system()');
    await psql(pg, 'postgres', 'CREATE TABLE t1 AS SELECT g FROM generate_series(1, 1000) g; CREATE TABLE t2 (x int)');
    const b = await setup.run(['basebackup', '--env-file', setup.envFile, '--json'], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(b.code, b.stderr).toBe(0);
    baseName = (JSON.parse(b.stdout) as { results: { name: string }[] }).results[0]!.name;
    for (let i = 0; i < 2; i++) {
      await psql(pg, 'postgres', 'INSERT INTO t1 SELECT g FROM generate_series(1, 1000) g');
      segment = await switchAndWaitArchived(pg);
    }
  }, 300_000);
  afterAll(async () => {
    await pg?.stop();
  });

  it('a failing wal-push is counted in BACKUP_DIR and the bucket; status shows the age against WAL_RPO and the failure', async () => {
    const before = await status();
    expect(before.results[0]!.wal).toMatchObject({ newestSegment: segment, rpoMs: 600_000, failures: null });
    expect(before.results[0]!.wal.ageMs).toBeLessThan(600_000);
    expect(Date.parse(before.results[0]!.wal.newestBaseBackupAt!)).toBeGreaterThan(Date.now() - 600_000);

    // The segment being written now, pushed with a key gpg does not have: the push fails. Some WAL
    // is written first: right after a switch the position sits on the segment boundary, where
    // pg_walfile_name() names the previous, archived segment (and its push succeeds, same content).
    const current = await psql(pg, 'postgres', 'INSERT INTO t2 VALUES (1); SELECT pg_walfile_name(pg_current_wal_insert_lsn())');
    expect(current).not.toBe(segment);
    const bad = await setup.run(
      ['wal-push', '--env-file', setup.envFile, '--set', 'GPG_RECIPIENT=nobody@example.invalid', `pg_wal/${current}`],
      { cwd: pg.dataDir },
    );
    expect(bad.code).not.toBe(0);
    expect(bad.code).toBeLessThanOrEqual(125);
    const local = JSON.parse(readFileSync(join(setup.vars.BACKUP_DIR!, 'wal', 'push-failures.json'), 'utf8')) as Record<string, unknown>;
    expect(local).toMatchObject({ format: 'pgbak-wal-push-failures', count: 1, lastFile: current });
    const { stdout } = await execFileAsync(
      'aws',
      ['s3', 'cp', `s3://${setup.bucket}/pitr/wal/push-failures.json`, '-', '--endpoint-url', services().s3.endpoint],
      { env: awsEnv() },
    );
    expect(JSON.parse(stdout)).toMatchObject({ count: 1, lastFile: current });

    const after = (await status()).results[0]!;
    expect(after.wal.failures).toMatchObject({ count: 1, lastFile: current, failing: true });
    expect(after.wal.failures!.lastError).toMatch(/nobody@example\.invalid|gpg/);
    expect(after.warnings.join('\n')).toMatch(/archive_command is failing: 1 failed wal-push call\(s\) recorded/);
    const text = await setup.run(['status', '--env-file', setup.envFile], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(text.stdout).toMatch(/WAL archive +newest segment \w{24}, .* old; WAL_RPO 10m/);
    expect(text.stdout).toMatch(/archive failures +1 failed wal-push call\(s\), the last at .*, after the newest archived segment/);
  });

  it('METRICS_TEXTFILE after a basebackup, and a daemon’s /metrics from its start: WAL age, WAL_RPO, failures, base backup', async () => {
    const b = await setup.run(['basebackup', '--env-file', setup.envFile], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(b.code, b.stderr).toBe(0);
    const now = Date.now() / 1000;
    const file = readFileSync(textfile, 'utf8');
    expect(sample(file, 'pgbak_wal_rpo_seconds', job())).toBe(600);
    expect(sample(file, 'pgbak_wal_archive_failures_total', job())).toBe(1);
    expect(now - sample(file, 'pgbak_wal_last_archived_timestamp_seconds', job())!).toBeLessThan(600);
    expect(now - sample(file, 'pgbak_wal_archive_last_failure_timestamp_seconds', job())!).toBeLessThan(600);
    expect(now - sample(file, 'pgbak_basebackup_last_success_timestamp_seconds', job())!).toBeLessThan(120);

    // A daemon on another host (its own BACKUP_DIR): the failures come from the bucket's copy.
    const dir = tempDir();
    const v = setup.vars;
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: dir,
      DATABASE_URL: pg.url('postgres'),
      ...Object.fromEntries(Object.entries(v).filter(([k]) => k.startsWith('STORAGE_'))),
      BACKUP_DIR: join(dir, 'backups'),
      LOG_FILE: '',
      WAL_RPO: '10m',
      METRICS_ADDR: '127.0.0.1:0',
      BACKUP_SCHEDULE: '0 0 1 1 *',
    };
    const { child, done } = spawnCli(['daemon'], { env, cwd: dir, timeoutMs: 120_000 });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const until = Date.now() + 60_000;
      while (!/metrics served at (http:\/\/[0-9.:]+)\/metrics/.test(stderr)) {
        if (Date.now() > until) throw new Error(`the daemon did not serve /metrics:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const url = /metrics served at (http:\/\/[0-9.:]+)\/metrics/.exec(stderr)![1]!;
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(sample(metrics, 'pgbak_wal_rpo_seconds', job())).toBe(600);
      expect(sample(metrics, 'pgbak_wal_archive_failures_total', job())).toBe(1);
      expect(Date.now() / 1000 - sample(metrics, 'pgbak_wal_last_archived_timestamp_seconds', job())!).toBeLessThan(600);
      expect(Date.now() / 1000 - sample(metrics, 'pgbak_basebackup_last_success_timestamp_seconds', job())!).toBeLessThan(300);
    } finally {
      child.kill('SIGTERM');
    }
    expect((await done).code, stderr.slice(-2000)).toBe(0);
  });

  it('verify --restore-test restores the newest base backup, recovers to the end of the archive, queries it and records it', async () => {
    const r = await setup.run(['verify', '--restore-test', '--env-file', setup.envFile], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const newest = /verify ok: (base_\d{8}_\d{6}) \(restore-test, /.exec(r.stdout)?.[1];
    expect(newest, r.stdout).toBeTruthy();
    expect(newest! >= baseName).toBe(true);
    expect(r.stdout).toMatch(/ok +recovery: replayed the WAL archive and promoted in/);
    expect(r.stdout).toMatch(/ok +query: \d+ databases; postgres has 2 tables/);
    expect(existsSync(join(setup.vars.BACKUP_DIR!, 'base', sysid, `${newest}.verification`))).toBe(true);
    expect(readdirSync(setup.vars.BACKUP_DIR!).filter((f) => f.startsWith('.pgbak-restore-test-'))).toEqual([]);
    const st = (await status()).results[0]!;
    expect(st.lastRestoreTest).toMatchObject({ backup: newest, ok: true });
    expect(sample(readFileSync(textfile, 'utf8'), 'pgbak_restore_test_last_duration_seconds', job())).toBeGreaterThan(0);
  });

  it('a segment missing from the archive: the restore test fails naming it (exit 14), the temporary server is stopped and removed', async () => {
    const { stdout } = await execFileAsync(
      'aws',
      ['s3', 'ls', `s3://${setup.bucket}/pitr/wal/${sysid}/`, '--endpoint-url', services().s3.endpoint],
      { env: awsEnv() },
    );
    // Archive more after the newest base backup, then take out the first segment after it.
    const later: string[] = [];
    for (let i = 0; i < 2; i++) {
      await psql(pg, 'postgres', 'INSERT INTO t1 SELECT g FROM generate_series(1, 100) g');
      later.push(await switchAndWaitArchived(pg));
    }
    const listed = (
      await execFileAsync('aws', ['s3', 'ls', `s3://${setup.bucket}/pitr/wal/${sysid}/`, '--endpoint-url', services().s3.endpoint], {
        env: awsEnv(),
      })
    ).stdout;
    expect(listed.length).toBeGreaterThan(stdout.length);
    const victim = listed
      .split('\n')
      .map((l) => l.trim().split(/\s+/).pop() ?? '')
      .find((k) => k.startsWith(`${later[0]}~`))!;
    const url = `s3://${setup.bucket}/pitr/wal/${sysid}/${victim}`;
    await execFileAsync('aws', ['s3', 'mv', url, `s3://${setup.bucket}/aside/${victim}`, '--endpoint-url', services().s3.endpoint], {
      env: awsEnv(),
    });
    try {
      const r = await setup.run(['verify', '--restore-test', '--env-file', setup.envFile], { env: { DATABASE_URL: pg.url('postgres') } });
      expect(r.code, r.stdout + r.stderr).toBe(14);
      expect(r.stdout).toMatch(/verify FAILED: base_\d{8}_\d{6} \(restore-test, /);
      expect(r.stdout).toMatch(new RegExp(`FAIL recovery: .*${later[0]} is missing from the WAL archive`));
      expect(readdirSync(setup.vars.BACKUP_DIR!).filter((f) => f.startsWith('.pgbak-restore-test-'))).toEqual([]);
      const { stdout: ps } = await execFileAsync('ps', ['-eo', 'args']);
      expect(ps).not.toContain('.pgbak-restore-test-');
      const st = (await status()).results[0]!;
      expect(st.lastRestoreTest).toMatchObject({ ok: false });
    } finally {
      await execFileAsync('aws', ['s3', 'mv', `s3://${setup.bucket}/aside/${victim}`, url, '--endpoint-url', services().s3.endpoint], {
        env: awsEnv(),
      });
    }
  });
});
