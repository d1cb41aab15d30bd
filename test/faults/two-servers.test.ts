import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { timestampOf } from '../../src/catalog/backup-name.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { cloneLocal } from '../helpers/clone-backup.js';
import { awsKeys, awsPut } from '../helpers/restore-fixtures.js';
import { createBucket, createDatabase, services, sql, tempDir, uniqueId } from '../helpers/services.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';

const OTHER_SERVER = '7123456789012345678';

/**
 * Fault run case 18d (second half) / issue 14 §1: two servers back up a database of the same
 * name into one bucket prefix. `restore --latest` must use its own server's backups, and refuse
 * when it cannot tell which server is its own.
 */
describe('two servers, one database name, one bucket prefix', () => {
  let db: string;
  let bucket: string;
  let prefix: string;
  let own: string;
  let other: string;
  let ownId: string;
  let hostA: string;

  beforeAll(async () => {
    db = await createDatabase(
      'c18d',
      `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'own' FROM generate_series(1, 100) g;`,
    );
    ownId = await sql('postgres', 'SELECT system_identifier::text FROM pg_control_system()');
    bucket = await createBucket('c18d');
    prefix = `c18d-${uniqueId()}/`;
    hostA = tempDir();
    const b = await runCli(['backup', '--json', '--no-prune'], {
      env: { ...backupEnv({ database: db, dir: hostA, bucket }), STORAGE_PREFIX: prefix },
    });
    expect(b.code, b.stderr).toBe(0);
    own = jsonResult(b.stdout).name;

    // Host B: another server's backup of a database of the same name, newer, in the same prefix
    // (host A's files under a new name, the manifest naming another server and host).
    const dirA = join(hostA, 'backups');
    other = `${db}_${timestampOf(new Date(Date.now() + 60_000))}`;
    cloneLocal(dirA, own, other, (m) => {
      m.server.systemIdentifier = OTHER_SERVER;
      m.host = 'host-b.example';
      m.startedAt = new Date(Date.now() + 60_000).toISOString();
    });
    for (const f of readdirSync(dirA).filter((x) => x.startsWith(`${other}.`))) await awsPut(join(dirA, f), bucket, prefix + f);
  });

  /** A disaster-recovery host: an empty BACKUP_DIR (no last-run record), the bucket. */
  function freshHost(databaseUrl?: string): NodeJS.ProcessEnv {
    const env = { ...backupEnv({ database: db, dir: tempDir(), bucket }), STORAGE_PREFIX: prefix };
    return databaseUrl ? { ...env, DATABASE_URL: databaseUrl } : env;
  }

  it('with the server down, restore --latest refuses as ambiguous, naming both servers and their newest backups', async () => {
    const { pg } = services();
    const env = freshHost(`postgresql://${pg.user}:${encodeURIComponent(pg.password)}@127.0.0.1:1/${db}`);
    const list = jsonResults((await runCli(['list', '--json'], { env })).stdout).map((b: { name: string }) => b.name);
    expect(list).toEqual([other, own]);
    const r = await runCli(['restore', '--latest', '--target', `c18d_x_${uniqueId()}`, '--create'], { env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/from 2 different servers/);
    expect(r.stderr).toContain(`server ${OTHER_SERVER}: newest ${other}`);
    expect(r.stderr).toContain('host host-b.example');
    expect(r.stderr).toContain(`server ${ownId}: newest ${own}`);
    expect(r.stderr).toMatch(/hint: name the backup .*STORAGE_PREFIX/);

    const v = await runCli(['verify', '--latest'], { env });
    expect(v.code, v.stderr).toBe(2);
    expect(v.stderr).toMatch(/from 2 different servers/);
  });

  it("with the server up, restore --latest picks its own server's backup; a named one of the other server says whose it is", async () => {
    const env = freshHost();
    const target = `c18d_own_${uniqueId()}`;
    const r = await runCli(['restore', '--latest', '--target', target, '--create', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(jsonResult(r.stdout)).toMatchObject({ name: own, database: db, server: { systemIdentifier: ownId } });

    const named = await runCli(['restore', other, '--target', `c18d_other_${uniqueId()}`, '--create'], { env });
    expect(named.code, named.stderr).toBe(0);
    expect(named.stdout).toContain(`restore ok: ${other}`);
    expect(named.stdout).toContain(`backup of database ${db}, server ${OTHER_SERVER}`);
    expect(named.stdout).toContain('host-b.example');
  });

  // Last: it prunes host A's first backup.
  it("host A: the other server's backups never count toward its BACKUP_KEEP_MIN nor are pruned by it; status, the run and prune warn", async () => {
    const env = {
      ...backupEnv({ database: db, dir: hostA, bucket }),
      STORAGE_PREFIX: prefix,
      RETENTION_DAYS: '0',
      BACKUP_KEEP_MIN: '1',
    };
    const warning = `also holds 1 backup(s) of database ${db} made on another server: 1 from server ${OTHER_SERVER} (host host-b.example)`;
    const otherKeys = (await awsKeys(bucket, prefix)).filter((k) => k.includes(other));
    expect(otherKeys.length).toBeGreaterThanOrEqual(3);

    const status = await runCli(['status', '--json'], { env });
    expect((jsonResult(status.stdout) as { warnings: string[] }).warnings.join('\n')).toContain(warning);

    // A second backup of host A, with the run's prune: RETENTION_DAYS=0 and BACKUP_KEEP_MIN=1 remove its first.
    await new Promise((r) => setTimeout(r, 1100));
    const b = await runCli(['backup', '--json'], { env });
    expect(b.code, b.stderr).toBe(0);
    const second = jsonResult(b.stdout) as { name: string; warnings: string[] };
    expect(second.warnings.join('\n')).toContain(warning);
    expect(second.warnings.join('\n')).toContain('Give each server its own STORAGE_PREFIX');

    // A prune of its own (nothing protected): the newest of host A's backups is its BACKUP_KEEP_MIN,
    // although the other server's backup is newer; the other server's backup is not even considered.
    const p = await runCli(['prune', '--json'], { env });
    expect(p.code, p.stderr).toBe(0);
    const pruned = jsonResult(p.stdout) as {
      decisions: { keep: { name: string; reasons: string[] }[]; remove: { name: string }[] };
      warnings: string[];
    };
    expect(pruned.decisions.remove).toEqual([]);
    expect(pruned.decisions.keep.map((d) => d.name)).toEqual([second.name]);
    expect(pruned.decisions.keep[0]!.reasons.join(' ')).toMatch(/newest 1/);
    expect(pruned.warnings.join('\n')).toContain(warning);
    const keys = await awsKeys(bucket, prefix);
    expect(keys.filter((k) => k.includes(other))).toEqual(otherKeys);
    expect(keys.some((k) => k.includes(`${own}.`))).toBe(false);
    expect(keys.some((k) => k.includes(`${second.name}.`))).toBe(true);
  });
});
