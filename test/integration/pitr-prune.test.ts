import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';
import { psql, type PgCluster } from '../helpers/postgres-cluster.js';
import {
  pitrSetup,
  postgresDir,
  startArchivingCluster,
  startDataDir,
  switchAndWaitArchived,
  waitPromoted,
  type PitrSetup,
} from '../helpers/pitr.js';

interface Base {
  name: string;
  firstSegment: string;
}
interface PruneDoc {
  results: {
    wal: {
      baseBackups: { keep: { name: string }[]; remove: { name: string; reasons: string[] }[] };
      walCutoff: string | null;
      walRemoved: number;
      files: { backup: string; location: string; key: string }[];
    };
  }[];
}

describe('prune of base backups and WAL (MinIO, gpg): RETENTION_DAYS=0, BACKUP_KEEP_MIN=1', () => {
  let setup: PitrSetup;
  let pg: PgCluster;
  let sysid: string;
  const bases: Base[] = [];

  const basebackup = async (): Promise<Base> => {
    const b = await setup.run(['basebackup', '--env-file', setup.envFile, '--json'], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(b.code, b.stderr).toBe(0);
    return (JSON.parse(b.stdout) as { results: Base[] }).results[0]!;
  };
  const prune = (extra: string[]) =>
    setup.run(['prune', '--env-file', setup.envFile, '--json', ...extra], {
      env: { DATABASE_URL: pg.url('postgres'), RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '1' },
    });

  beforeAll(async () => {
    setup = await pitrSetup();
    pg = await startArchivingCluster(setup);
    sysid = await psql(pg, 'postgres', 'SELECT system_identifier FROM pg_control_system()');
    await psql(pg, 'postgres', 'CREATE TABLE rows (id int, batch int); INSERT INTO rows SELECT g, 0 FROM generate_series(1, 50) g');
    bases.push(await basebackup());
    for (let i = 1; i <= 3; i++) {
      await psql(pg, 'postgres', `INSERT INTO rows SELECT g, ${i} FROM generate_series(1, 100) g`);
      await switchAndWaitArchived(pg);
    }
    await new Promise((r) => setTimeout(r, 1100)); // a new base backup name (second resolution)
    bases.push(await basebackup());
    await psql(pg, 'postgres', 'INSERT INTO rows SELECT g, 4 FROM generate_series(1, 100) g');
    await switchAndWaitArchived(pg);
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('list shows both base backups beside the dumps: kind base, timeline, LSNs', async () => {
    const r = await setup.run(['list', '--env-file', setup.envFile, '--json'], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(r.code, r.stderr).toBe(0);
    const listed = jsonResults<{ kind: string; name: string; locations: string[]; base?: { timeline: number; startLsn: string } }>(
      r.stdout,
    ).filter((b) => b.kind === 'base');
    expect(listed.map((b) => b.name)).toEqual([bases[1]!.name, bases[0]!.name]);
    for (const b of listed) {
      expect(b.locations).toEqual(['local', 'remote']);
      expect(b.base?.timeline).toBe(1);
      expect(b.base?.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    }
    const text = await setup.run(['list', '--env-file', setup.envFile], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(text.stdout).toMatch(new RegExp(`${bases[0]!.name} +\\(base backup\\)`));
    expect(text.stdout).toMatch(new RegExp(`${bases[1]!.name}: timeline 1, WAL [0-9A-F]+/[0-9A-F]+ → [0-9A-F]+/[0-9A-F]+`));
  });

  it('--dry-run lists the older base backup and the WAL before the newer one start, and deletes nothing', async () => {
    const r = await prune(['--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    const wal = jsonResult<PruneDoc['results'][number]>(r.stdout).wal;
    expect(wal.baseBackups.keep.map((b) => b.name)).toEqual([bases[1]!.name]);
    expect(wal.baseBackups.remove.map((b) => b.name)).toEqual([bases[0]!.name]);
    expect(wal.walCutoff).toBe(bases[1]!.firstSegment);
    const walKeys = wal.files.filter((f) => f.backup === 'wal').map((f) => f.key);
    expect(walKeys.length).toBeGreaterThanOrEqual(3);
    for (const k of walKeys) {
      const name = k.split('/')[2]!.split('~')[0]!;
      expect(name.slice(0, 24) < bases[1]!.firstSegment, name).toBe(true);
      expect(name).not.toMatch(/\.history$/);
    }
    expect(walKeys.some((k) => k.includes(`/${bases[0]!.firstSegment}~`))).toBe(true);
    expect(existsSync(join(setup.vars.BACKUP_DIR!, 'base', sysid, `${bases[0]!.name}.json`))).toBe(true);
    const text = await setup.run(['prune', '--env-file', setup.envFile, '--dry-run'], {
      env: { DATABASE_URL: pg.url('postgres'), RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '1' },
    });
    expect(text.stdout).toContain(`remove ${bases[0]!.name}  base`);
    expect(text.stdout).toMatch(new RegExp(`WAL: would delete ${walKeys.length} file\\(s\\) older than ${bases[1]!.firstSegment}`));
  });

  it('prune deletes them; verify --wal is still complete and the newer base backup restores with --latest (every row)', async () => {
    const r = await prune([]);
    expect(r.code, r.stderr).toBe(0);
    const wal = jsonResult<PruneDoc['results'][number]>(r.stdout).wal;
    expect(wal.walRemoved).toBeGreaterThanOrEqual(3);
    const local = readdirSync(join(setup.vars.BACKUP_DIR!, 'base', sysid));
    expect(local.some((f) => f.startsWith(bases[0]!.name))).toBe(false);
    expect(local).toContain(`${bases[1]!.name}.json`);

    const again = await prune(['--dry-run']);
    const after = jsonResult<PruneDoc['results'][number]>(again.stdout).wal;
    expect(after.files).toEqual([]);
    expect(after.baseBackups.keep.map((b) => b.name)).toEqual([bases[1]!.name]);

    const l = await setup.run(['list', '--env-file', setup.envFile, '--json'], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(
      jsonResults<{ kind: string; name: string }>(l.stdout)
        .filter((b) => b.kind === 'base')
        .map((b) => b.name),
    ).toEqual([bases[1]!.name]);

    const v = await setup.run(['verify', '--env-file', setup.envFile, '--wal']);
    expect(v.code, v.stdout + v.stderr).toBe(0);

    const expected = await psql(pg, 'postgres', 'SELECT batch, count(*) FROM rows GROUP BY batch ORDER BY batch');
    const dir = await postgresDir(join(setup.dir, 'latest'));
    const res = await setup.run(['restore', '--env-file', setup.envFile, '--latest', '--pgdata', dir, '--no-archive']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`base backup ${bases[1]!.name}`);
    const server = await startDataDir(setup, dir, pg.password, pg.bindir);
    try {
      await waitPromoted(server);
      expect(await server.query('SELECT batch, count(*) FROM rows GROUP BY batch ORDER BY batch')).toBe(expected);
    } finally {
      await server.stop();
    }
  });
});
