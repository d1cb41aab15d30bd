import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { jsonResult } from '../helpers/json-schemas.js';
import { psql, startCluster, type PgCluster } from '../helpers/postgres-cluster.js';
import { tempDir } from '../helpers/services.js';

/**
 * The globals (pg_dumpall) are stored beside the dump (api/backup.ts): their failure while
 * pg_dump runs must still fail the run, stop the dump, leave nothing under a final name and
 * keep the earlier backups. A cluster of its own: the test revokes a catalog privilege.
 */

/** Files under a final backup name (not temp files, not the lock). */
const finalFiles = (dir: string) =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => !f.startsWith('.'))
        .sort()
    : [];

describe('pgbak backup: globals beside the dump', () => {
  let cluster: PgCluster;
  let url: string;
  beforeAll(async () => {
    cluster = await startCluster();
    // A backup role that is no superuser: pg_dumpall reads the catalogs as it is allowed to.
    await psql(
      cluster,
      'postgres',
      `CREATE ROLE gbak LOGIN PASSWORD 'gbak-pw'; CREATE DATABASE gtest; GRANT CONNECT ON DATABASE gtest TO gbak;`,
    );
    // A partitioned table: a lock on the parent ONLY stops pg_dump (which locks every table it
    // dumps), not the preflight (which sizes the partitions).
    await psql(
      cluster,
      'gtest',
      `CREATE TABLE p (id int PRIMARY KEY, note text) PARTITION BY RANGE (id);
       CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
       INSERT INTO p SELECT i, md5(i::text) FROM generate_series(0, 999) i;
       GRANT SELECT ON p, p1 TO gbak;`,
    );
    url = cluster.url('gtest').replace(/\/\/[^@]+@/, '//gbak:gbak-pw@');
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a globals failure while pg_dump runs fails the run at once, stores nothing and keeps earlier backups', async () => {
    const dir = tempDir();
    const env = { ...backupEnv({ database: 'gtest', dir, extra: { BACKUP_COMPRESSION: 'gzip:1' } }), DATABASE_URL: url };
    const first = await runCli(['backup', '--json'], { env });
    expect(first.code, first.stderr).toBe(0);
    const ok = jsonResult(first.stdout);
    // The globals of a role that is no superuser: stored without role passwords, with a warning.
    expect(ok.warnings).toContain('globals stored without role passwords (the backup user is not a superuser)');
    const before = finalFiles(join(dir, 'backups'));
    expect(before.some((f) => f.endsWith('.globals.sql'))).toBe(true);
    const sizes = before.map((f) => statSync(join(dir, 'backups', f)).size);
    await new Promise((r) => setTimeout(r, 1100)); // a new name for the second run

    // pg_dumpall now fails (it reads pg_auth_members for the role memberships; pg_dump does not),
    // while pg_dump waits for a lock this test holds until the run is over.
    await psql(cluster, 'postgres', 'REVOKE SELECT ON pg_catalog.pg_auth_members FROM PUBLIC');
    const holder = new pg.Client({ connectionString: cluster.url('gtest') });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE ONLY p IN ACCESS EXCLUSIVE MODE');
      const log = join(dirname(cluster.dataDir), 'server.log');
      const logStart = statSync(log).size;
      const r = await runCli(['backup', '--json'], { env });
      // The run ended while the lock is still held: the globals' failure stopped pg_dump, which
      // had started (the server's log has its statement) and was waiting for the lock.
      expect(r.code).not.toBe(0);
      const failed = jsonResult(r.stdout);
      expect(failed.status).toBe('failed');
      expect(failed.error?.message).toMatch(/pg_dumpall exited with code 1: .*permission denied for table pg_auth_members/);
      const logged = readFileSync(log, 'utf8').slice(logStart);
      // pg_dump's wait for the lock, cancelled when it was stopped.
      expect(logged).toMatch(
        /ERROR: {2}canceling statement due to user request\n.*STATEMENT: {2}LOCK TABLE public\.p IN ACCESS SHARE MODE/,
      );
      const { rows } = await holder.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'`);
      expect(rows[0]!.n).toBe(0);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
      await psql(cluster, 'postgres', 'GRANT SELECT ON pg_catalog.pg_auth_members TO PUBLIC');
    }
    // Nothing under a final name, no temp file; the earlier backup untouched.
    const after = finalFiles(join(dir, 'backups'));
    expect(after).toEqual(before);
    expect(after.map((f) => statSync(join(dir, 'backups', f)).size)).toEqual(sizes);
    expect(readdirSync(join(dir, 'backups')).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }, 300_000);

  it('the preflight checks run at once but fail in their order: the database before the GPG key', async () => {
    const dir = tempDir();
    const env = {
      ...backupEnv({ database: 'gtest', dir, extra: { GPG_RECIPIENT: 'nobody@nowhere.test' } }),
      DATABASE_URL: url.replace('gbak-pw', 'wrong-pw'),
    };
    const r = await runCli(['backup'], { env });
    // Both fail; the database is the first check, so its failure is the run's (exit 5, not 8).
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/error: authentication failed: postgresql:\/\/gbak:\*\*\*@/);
    expect(r.stderr).not.toMatch(/GPG key not found/);
    expect(finalFiles(join(dir, 'backups'))).toEqual([]);
    // --dry-run reports every check, in the same order.
    const plan = await runCli(['backup', '--dry-run'], { env });
    expect(plan.code).not.toBe(0);
    const database = plan.stdout.indexOf('database');
    const gpg = plan.stdout.indexOf('GPG key not found');
    expect(database).toBeGreaterThanOrEqual(0);
    expect(gpg).toBeGreaterThan(database);
  }, 120_000);
});
