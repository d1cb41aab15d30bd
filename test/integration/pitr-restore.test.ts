import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import { awsEnv, services } from '../helpers/services.js';

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('point-in-time recovery: basebackup, then restore --time / --latest --pgdata (MinIO, gpg)', () => {
  let setup: PitrSetup;
  let pg: PgCluster;
  let T: string;
  let afterBatch2: string;
  let baseName: string;

  beforeAll(async () => {
    setup = await pitrSetup();
    pg = await startArchivingCluster(setup);
    await psql(pg, 'postgres', 'CREATE TABLE rows (id int, batch int); INSERT INTO rows SELECT g, 0 FROM generate_series(1, 50) g');
    const b = await setup.run(['basebackup', '--env-file', setup.envFile, '--json'], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(b.code, b.stderr).toBe(0);
    const doc = JSON.parse(b.stdout) as { results: { name: string; stopTime: string; firstSegment: string; artifact: { key: string } }[] };
    baseName = doc.results[0]!.name;
    expect(doc.results[0]!.artifact.key).toMatch(/^base\/\d+\/base_\d{8}_\d{6}\.tar\.zst\.gpg$/);
    await psql(pg, 'postgres', 'INSERT INTO rows SELECT g, 1 FROM generate_series(1, 100) g');
    await switchAndWaitArchived(pg);
    await sleep(1500);
    T = await psql(pg, 'postgres', `SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);
    await sleep(1500);
    await psql(pg, 'postgres', 'INSERT INTO rows SELECT g, 2 FROM generate_series(1, 100) g');
    await sleep(1100);
    afterBatch2 = await psql(pg, 'postgres', `SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);
    await switchAndWaitArchived(pg);
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('basebackup wrote the artifact in BACKUP_DIR and the bucket and its manifest last, with the LSNs, timeline, system identifier and label', async () => {
    const sysid = await psql(pg, 'postgres', 'SELECT system_identifier FROM pg_control_system()');
    const manifest = JSON.parse(readFileSync(join(setup.vars.BACKUP_DIR!, 'base', sysid, `${baseName}.json`), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(manifest).toMatchObject({ format: 'pgbak-basebackup', systemIdentifier: sysid, timeline: 1, copies: ['local', 'remote'] });
    expect(manifest.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(manifest.backupLabel).toMatch(/LABEL: pgbak base_/);
    expect(String(manifest.serverVersion)).toMatch(/^\d+\.\d+/);
    const { stdout } = await execFileAsync(
      'aws',
      ['s3', 'ls', '--recursive', `s3://${setup.bucket}/pitr/base/`, '--endpoint-url', services().s3.endpoint],
      {
        env: awsEnv(),
      },
    );
    expect(stdout).toContain(`${baseName}.json`);
    expect(stdout).toContain(`${baseName}.tar.zst.gpg`);
  });

  it('restore --time T: exactly the rows committed before T, then the server promotes on a new timeline; no secret in its configuration', async () => {
    const dir = await postgresDir(join(setup.dir, 'pitr1'));
    const r = await setup.run(['restore', '--env-file', setup.envFile, '--time', T, '--pgdata', dir, '--no-archive']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`base backup ${baseName}`);
    expect(existsSync(join(dir, 'recovery.signal'))).toBe(true);
    const auto = readFileSync(join(dir, 'postgresql.auto.conf'), 'utf8');
    expect(auto).toContain(`recovery_target_time = '${T.replace('T', ' ').replace('Z', '+00')}'`);
    expect(auto).toContain("recovery_target_action = 'promote'");
    expect(auto).toMatch(/restore_command = '.*wal-fetch --env-file .*pitr1\.pgbak-wal\.env %f %p'/);
    expect(auto).not.toContain(services().s3.secretKey);
    expect(statSync(`${dir}.pgbak-wal.env`).mode & 0o077).toBe(0);

    const server = await startDataDir(setup, dir, pg.password, pg.bindir);
    try {
      await waitPromoted(server);
      expect(await server.query('SELECT batch, count(*) FROM rows GROUP BY batch ORDER BY batch')).toBe('0|50\n1|100');
      expect(await server.query('SELECT pg_walfile_name(pg_current_wal_lsn())')).toMatch(/^00000002/);
      expect(readFileSync(server.log, 'utf8')).toMatch(/recovery stopping before commit of transaction/);
      expect(readFileSync(server.log, 'utf8')).not.toContain(services().s3.secretKey);
    } finally {
      await server.stop();
    }
  });

  it('restore --latest: every row, promoted at the end of the archive', async () => {
    const dir = await postgresDir(join(setup.dir, 'latest'));
    const r = await setup.run(['restore', '--env-file', setup.envFile, '--latest', '--pgdata', dir, '--no-archive']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'postgresql.auto.conf'), 'utf8')).toContain("archive_mode = 'off'");
    const server = await startDataDir(setup, dir, pg.password, pg.bindir);
    try {
      await waitPromoted(server);
      expect(await server.query('SELECT batch, count(*) FROM rows GROUP BY batch ORDER BY batch')).toBe('0|50\n1|100\n2|100');
      // The first wal-fetch fetched the following segments ahead; PostgreSQL's calls for them took them from pg_wal/pgbak_prefetch.
      expect(readFileSync(server.log, 'utf8')).toMatch(/restored from the prefetched WAL file=[0-9A-F]{24}/);
    } finally {
      await server.stop();
    }
  });

  it('a timeline switch: restore, promote and archive on timeline 2, then restore to a time on timeline 2', async () => {
    const dir = await postgresDir(join(setup.dir, 'tl2'));
    const r = await setup.run(['restore', '--env-file', setup.envFile, '--latest', '--pgdata', dir]);
    expect(r.code, r.stderr).toBe(0);
    let T2: string;
    const server = await startDataDir(setup, dir, pg.password, pg.bindir);
    try {
      await waitPromoted(server);
      await server.query('INSERT INTO rows SELECT g, 3 FROM generate_series(1, 30) g');
      await sleep(1500);
      T2 = await server.query(`SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);
      await sleep(1500);
      await server.query('INSERT INTO rows SELECT g, 4 FROM generate_series(1, 30) g');
      const last = await server.query('SELECT pg_walfile_name(pg_switch_wal())');
      expect(last).toMatch(/^00000002/);
      const deadline = Date.now() + 120_000;
      while ((await server.query("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")).slice(0, 24) < last) {
        if (Date.now() > deadline) throw new Error(`timeline 2 not archived: ${readFileSync(server.log, 'utf8').slice(-3000)}`);
        await sleep(300);
      }
    } finally {
      await server.stop();
    }
    const again = await postgresDir(join(setup.dir, 'tl2-again'));
    const r2 = await setup.run(['restore', '--env-file', setup.envFile, '--time', T2, '--pgdata', again, '--no-archive']);
    expect(r2.code, r2.stderr).toBe(0);
    const second = await startDataDir(setup, again, pg.password, pg.bindir);
    try {
      await waitPromoted(second);
      expect(await second.query('SELECT batch, count(*) FROM rows GROUP BY batch ORDER BY batch')).toBe('0|50\n1|100\n2|100\n3|30');
      expect(await second.query('SELECT pg_walfile_name(pg_current_wal_lsn())')).toMatch(/^00000003/);
    } finally {
      await second.stop();
    }
    // verify --wal follows 00000002.history: timeline 1 up to the switch, timeline 2 after it.
    const v = await setup.run(['verify', '--wal', '--env-file', setup.envFile]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(/verify --wal ok: .* from base backup base_/);
    expect(v.stdout).toMatch(/timeline 1: 00000001\w+ … 00000001\w+ \(\d+ segments\)\n {2}timeline 2: 00000002/);
  }, 300_000); // two restores, two recoveries and archiving on timeline 2: over 120 s on a loaded 2-core machine

  it('a time before every base backup, or a data directory that is not empty: a clear error and nothing written', async () => {
    const dir = await postgresDir(join(setup.dir, 'early'));
    const early = await setup.run(['restore', '--env-file', setup.envFile, '--time', '2000-01-01T00:00:00Z', '--pgdata', dir]);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(
      /2000-01-01T00:00:00.000Z is earlier than the end of every base backup: the oldest, base_\d+_\d+, ended at/,
    );
    expect(readdirSync(dir)).toEqual([]);
    expect(existsSync(`${dir}.pgbak-wal.env`)).toBe(false);

    const full = await postgresDir(join(setup.dir, 'full'));
    writeFileSync(join(full, 'PG_VERSION'), '15\n');
    const busy = await setup.run(['restore', '--env-file', setup.envFile, '--latest', '--pgdata', full]);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toMatch(/--pgdata .*full is not empty \(PG_VERSION\)/);
    expect(readdirSync(full)).toEqual(['PG_VERSION']);
  });

  it('a segment missing from the archive between the base backup and T: recovery stops with the gap named and never promotes', async () => {
    const sysid = await psql(pg, 'postgres', 'SELECT system_identifier FROM pg_control_system()');
    const manifest = JSON.parse(readFileSync(join(setup.vars.BACKUP_DIR!, 'base', sysid, `${baseName}.json`), 'utf8')) as {
      lastSegment: string;
    };
    const { stdout } = await execFileAsync(
      'aws',
      ['s3', 'ls', `s3://${setup.bucket}/pitr/wal/${sysid}/`, '--endpoint-url', services().s3.endpoint],
      {
        env: awsEnv(),
      },
    );
    const segments = stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/).pop() ?? '')
      .filter((k) => /^00000001[0-9A-F]{16}~/.test(k))
      .sort();
    const after = segments.filter((k) => k.slice(0, 24) > manifest.lastSegment);
    expect(after.length).toBeGreaterThan(1);
    const victim = after[0]!;
    const url = `s3://${setup.bucket}/pitr/wal/${sysid}/${victim}`;
    await execFileAsync('aws', ['s3', 'mv', url, `s3://${setup.bucket}/aside/${victim}`, '--endpoint-url', services().s3.endpoint], {
      env: awsEnv(),
    });
    try {
      const dir = await postgresDir(join(setup.dir, 'gap'));
      const r = await setup.run(['restore', '--env-file', setup.envFile, '--time', afterBatch2, '--pgdata', dir, '--no-archive']);
      expect(r.code, r.stderr).toBe(0);
      await expect(startDataDir(setup, dir, pg.password, pg.bindir)).rejects.toThrow(/the archive has a gap/);
      const v = await setup.run(['verify', '--wal', '--env-file', setup.envFile]);
      expect(v.code).toBe(9);
      expect(v.stderr).toContain(`${victim.slice(0, 24)} is missing from the WAL archive`);
      const log = readdirSync(setup.dir).filter((f) => f.startsWith('server-'));
      expect(log.length).toBeGreaterThan(0);
      expect(existsSync(join(dir, 'recovery.signal'))).toBe(true); // never promoted: still a recovery target
    } finally {
      await execFileAsync('aws', ['s3', 'mv', `s3://${setup.bucket}/aside/${victim}`, url, '--endpoint-url', services().s3.endpoint], {
        env: awsEnv(),
      });
    }
  });

  it('PostgreSQL 15+ built with zstd compresses the base backup itself, pgbak does with WAL_BASEBACKUP_COMPRESS_ON=client: the same .tar.zst.gpg', async () => {
    const methods = await psql(
      pg,
      'postgres',
      "SELECT coalesce(array_to_string(enumvals, ','), '') FROM pg_settings WHERE name = 'wal_compression'",
    );
    const serverCan = pg.major >= 15 && methods.split(',').includes('zstd');
    const env = { DATABASE_URL: pg.url('postgres') };
    const sysid = await psql(pg, 'postgres', 'SELECT system_identifier FROM pg_control_system()');
    const members = async (name: string) => {
      const file = join(setup.vars.BACKUP_DIR!, 'base', sysid, `${name}.tar.zst.gpg`);
      const { stdout } = await execFileAsync('sh', ['-c', 'gpg --batch --quiet --decrypt "$1" | zstd -d -q -c | tar -tf -', 'sh', file], {
        env: { PATH: process.env.PATH, GNUPGHOME: setup.gnupgHome },
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout.split('\n');
    };
    const runs: { stderr: string; members: string[] }[] = [];
    for (const side of ['server', 'client']) {
      const r = await setup.run(['basebackup', '--env-file', setup.envFile, '--json'], {
        env: { ...env, WAL_BASEBACKUP_COMPRESS_ON: side },
      });
      expect(r.code, r.stderr).toBe(0);
      const name = (JSON.parse(r.stdout) as { results: { name: string }[] }).results[0]!.name;
      runs.push({ stderr: r.stderr, members: await members(name) });
    }
    const [server, client] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(server.stderr).toMatch(
      serverCan ? /base backup started .*compression=server-zstd:3/ : /base backup started .*compression=zstd:3/,
    );
    expect(client.stderr).toMatch(/base backup started .*compression=zstd:3/);
    for (const r of runs) expect(r.members).toEqual(expect.arrayContaining(['backup_label', 'PG_VERSION', 'global/pg_control']));
    // pg_basebackup adds its backup_manifest to a tar only when it compresses nothing itself.
    expect(client.members).toContain('backup_manifest');
    if (serverCan) expect(server.members).not.toContain('backup_manifest');
  });
});
