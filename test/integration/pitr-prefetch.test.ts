import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { psql, RUNUSER, type PgCluster } from '../helpers/postgres-cluster.js';
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
const SEGMENT = /^[0-9A-F]{24}$/;

/** The prefetch directory of a data directory (one signature: one set of settings flags). */
function prefetchDirOf(pgdata: string): string | undefined {
  const root = join(pgdata, 'pg_wal', 'pgbak_prefetch');
  const sigs = existsSync(root) ? readdirSync(root) : [];
  return sigs.length === 1 ? join(root, sigs[0]!) : undefined;
}

/** Wait until the worker has listed the archive and its directory stops changing (nothing pending). */
async function settled(dir: string, timeoutMs = 120_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let same = 0;
  for (;;) {
    const files = existsSync(dir) ? readdirSync(dir).sort() : [];
    const key = files.filter((f) => !f.startsWith('.')).join(',');
    const busy = !files.includes('listed') || files.some((f) => f.endsWith('.pending') || f.endsWith('.part'));
    same = !busy && key === last ? same + 1 : 0;
    last = key;
    if (same >= 6) return files.filter((f) => SEGMENT.test(f));
    if (Date.now() > deadline) throw new Error(`the prefetch worker did not settle: ${key}`);
    await sleep(500);
  }
}

describe('restore --pgdata: the WAL prefetch worker and bin/pgbak-wal-fetch (MinIO, gpg)', () => {
  let setup: PitrSetup;
  let pg: PgCluster;
  let sysid: string;
  let firstSegment: string;
  let T: string;
  /** Segments completed (and archived) after T. */
  const afterT: string[] = [];

  beforeAll(async () => {
    setup = await pitrSetup({ prefix: 'prefetch/' });
    pg = await startArchivingCluster(setup);
    sysid = await psql(pg, 'postgres', 'SELECT system_identifier FROM pg_control_system()');
    await psql(pg, 'postgres', 'CREATE TABLE rows (id int, batch int); INSERT INTO rows SELECT g, 0 FROM generate_series(1, 50) g');
    const b = await setup.run(['basebackup', '--env-file', setup.envFile, '--json'], { env: { DATABASE_URL: pg.url('postgres') } });
    expect(b.code, b.stderr).toBe(0);
    firstSegment = (JSON.parse(b.stdout) as { results: { firstSegment: string }[] }).results[0]!.firstSegment;
    for (let i = 1; i <= 3; i++) {
      await psql(pg, 'postgres', `INSERT INTO rows SELECT g, ${i} FROM generate_series(1, 100) g`);
      await switchAndWaitArchived(pg);
    }
    await sleep(1500);
    T = await psql(pg, 'postgres', `SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);
    await sleep(1500);
    for (let i = 4; i <= 7; i++) {
      await psql(pg, 'postgres', `INSERT INTO rows SELECT g, ${i} FROM generate_series(1, 100) g`);
      afterT.push(await switchAndWaitArchived(pg));
    }
  }, 300_000);
  afterAll(async () => {
    await pg?.stop();
  });

  it('restore --time T: restore_command is the sh client, recovery takes every file from the worker (no node), exactly the rows before T, promoted, the prefetch directory removed; no secret in the worker argv or environment', async () => {
    const dir = await postgresDir(join(setup.dir, 'pitr'));
    const r = await setup.run(['restore', '--env-file', setup.envFile, '--time', T, '--pgdata', dir, '--no-archive']);
    expect(r.code, r.stderr).toBe(0);
    const auto = readFileSync(join(dir, 'postgresql.auto.conf'), 'utf8');
    expect(auto).toMatch(/restore_command = 'PGBAK_NODE=\S+ \S+\/bin\/pgbak-wal-fetch --env-file \S+pitr\.pgbak-wal\.env %f %p'/);
    expect(auto).not.toContain(services().s3.secretKey);
    // The worker runs as soon as restore returns; its command line and environment carry no secret.
    const deadline = Date.now() + 60_000;
    let pid: number | undefined;
    while (pid === undefined && Date.now() < deadline) {
      const pre = prefetchDirOf(dir);
      if (pre && existsSync(join(pre, 'worker.lock')))
        pid = (JSON.parse(readFileSync(join(pre, 'worker.lock'), 'utf8')) as { pid: number }).pid;
      else await sleep(100);
    }
    expect(pid).toBeDefined();
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    expect(cmdline).toContain(`wal-fetch --prefetch-worker --until ${T}`);
    expect(cmdline).not.toContain(services().s3.secretKey);
    expect(readFileSync(`/proc/${pid}/environ`, 'utf8')).not.toContain(services().s3.secretKey);

    const server = await startDataDir(setup, dir, pg.password, pg.bindir);
    try {
      await waitPromoted(server);
      expect(await server.query('SELECT batch, count(*) FROM rows GROUP BY batch ORDER BY batch')).toBe('0|50\n1|100\n2|100\n3|100');
      const log = readFileSync(server.log, 'utf8');
      expect(log).toMatch(/recovery stopping before commit of transaction/);
      expect(log).toContain(`restored from the prefetched WAL file=${firstSegment}`);
      // Recovery reads the segment it stopped in once more at its end: from the kept copy, no round trip.
      expect(log).toMatch(/restored from the kept copy of the prefetched WAL file=[0-9A-F]{24}/);
      // The next timeline's history: answered from the worker's listing, not by node.
      expect(log).toMatch(/not in the WAL archive \(the prefetch worker listed it \d+s ago\) file=00000002\.history/);
      expect(log).toMatch(/not in the WAL archive \(the prefetch worker listed it \d+s ago\) file=00000001\.history/);
      // No call reached node's wal-fetch (it logs "restored from the WAL archive" / "is not in the WAL archive at").
      expect(log).not.toMatch(/restored from the WAL archive|is not in the WAL archive at/);
      expect(log).not.toContain(services().s3.secretKey);
      // Recovery ended: the worker removes its directory and ends.
      const end = Date.now() + 30_000;
      while (existsSync(join(dir, 'pg_wal', 'pgbak_prefetch', '')) && prefetchDirOf(dir) && Date.now() < end) await sleep(200);
      expect(prefetchDirOf(dir)).toBeUndefined();
    } finally {
      await server.stop();
    }
  }, 300_000);

  it('the worker keeps at most --prefetch-count segments ahead, fetches the next when PostgreSQL takes one, stops a couple of segments past --until, and cleans up when recovery ends', async () => {
    // A data directory in recovery, as the worker sees it: recovery.signal and pg_wal.
    const dir = await postgresDir(join(setup.dir, 'bound'));
    await postgresDir(join(dir, 'pg_wal'));
    writeFileSync(join(dir, 'recovery.signal'), '');
    const worker = (extra: string[]) =>
      setup.run(['wal-fetch', '--prefetch-worker', ...extra, '--pgdata', dir, '--env-file', setup.envFile, firstSegment, '-']);

    const counted = worker(['--prefetch-count', '2']);
    let pre: string | undefined;
    while (!(pre = prefetchDirOf(dir))) await sleep(100);
    const two = await settled(pre);
    expect(two).toHaveLength(2);
    expect(two[0]).toBe(firstSegment);
    // PostgreSQL takes the first: the worker fetches the third, never more than two at once.
    renameSync(join(pre, two[0]!), join(dir, 'taken'));
    const next = await settled(pre);
    expect(next).toHaveLength(2);
    expect(next[0]).toBe(two[1]);
    expect(next[1]! > two[1]!).toBe(true);
    rmSync(join(dir, 'recovery.signal'));
    expect((await counted).code).toBe(0);
    expect(prefetchDirOf(dir)).toBeUndefined();

    writeFileSync(join(dir, 'recovery.signal'), '');
    const until = worker(['--until', T]);
    while (!(pre = prefetchDirOf(dir))) await sleep(100);
    const fetched = await settled(pre);
    const past = fetched.filter((f) => afterT.includes(f));
    // The segment holding T is archived after T; one more may be needed; never the whole rest.
    expect(past.length).toBeGreaterThanOrEqual(1);
    expect(past.length).toBeLessThanOrEqual(2);
    expect(fetched).toContain(firstSegment);
    rmSync(join(dir, 'recovery.signal'));
    expect((await until).code).toBe(0);
    expect(prefetchDirOf(dir)).toBeUndefined();
  }, 300_000);

  it('the kept copy of a segment PostgreSQL took answers its repeated call; once the archive holds other content under that name, the worker drops it and it is never served', async () => {
    const dir = await postgresDir(join(setup.dir, 'kept'));
    await postgresDir(join(dir, 'pg_wal'));
    writeFileSync(join(dir, 'recovery.signal'), '');
    const worker = setup.run(['wal-fetch', '--prefetch-worker', '--pgdata', dir, '--env-file', setup.envFile, firstSegment, '-']);
    let pre: string | undefined;
    while (!(pre = prefetchDirOf(dir))) await sleep(100);
    const fetched = await settled(pre);
    const last = fetched[fetched.length - 1]!;
    expect(readdirSync(pre)).toContain(`${last}.kept`);
    // restore_command as PostgreSQL runs it (the postgres user, in the data directory).
    const fetch = async (name: string) => {
      const argv = ['sh', join(REPO_ROOT, 'bin', 'pgbak-wal-fetch'), '--env-file', setup.envFile, name, 'pg_wal/RECOVERYXLOG'];
      const [cmd, ...args] = process.getuid?.() === 0 ? [RUNUSER, '-u', 'postgres', '--', ...argv] : argv;
      rmSync(join(dir, 'pg_wal', 'RECOVERYXLOG'), { force: true });
      try {
        const r = await execFileAsync(cmd!, args, {
          cwd: dir,
          env: { PATH: process.env.PATH ?? '', HOME: setup.dir, PGBAK_NODE: process.execPath },
        });
        return { code: 0, stderr: r.stderr };
      } catch (err) {
        const e = err as { code?: number; stderr?: string };
        return { code: e.code ?? -1, stderr: e.stderr ?? '' };
      }
    };
    const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
    const first = await fetch(last);
    expect(first.stderr).toContain(`restored from the prefetched WAL file=${last}`);
    const bytes = sha(join(dir, 'pg_wal', 'RECOVERYXLOG'));
    const again = await fetch(last);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`restored from the kept copy of the prefetched WAL file=${last}`);
    expect(sha(join(dir, 'pg_wal', 'RECOVERYXLOG'))).toBe(bytes);

    // Another copy of that name, with other content, appears in the archive (a second server
    // pushing into the prefix): at its next listing the worker drops the kept copy, and the call
    // goes to wal-fetch, which refuses the name (two different copies) instead of serving either.
    const base = `s3://${setup.bucket}/prefetch/wal/${sysid}/`;
    const aws = (args: string[]) => execFileAsync('aws', [...args, '--endpoint-url', services().s3.endpoint], { env: awsEnv() });
    const keys = (await aws(['s3', 'ls', base])).stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/).pop() ?? '')
      .filter((k) => /^00000001[0-9A-F]{16}~/.test(k));
    const other = keys.find((k) => !k.startsWith(last))!;
    const twin = `${last}~${'0'.repeat(64)}${other.replace(/^[^.]*/, '')}`;
    await aws(['s3', 'cp', `${base}${other}`, `${base}${twin}`]);
    try {
      const deadline = Date.now() + 30_000;
      while (existsSync(join(pre, `${last}.kept`)) && Date.now() < deadline) await sleep(100);
      expect(existsSync(join(pre, `${last}.kept`))).toBe(false);
      const stale = await fetch(last);
      expect(stale.stderr).not.toContain('kept copy');
      expect(stale.code).not.toBe(0);
      expect(stale.stderr).toMatch(/archived twice with different content/);
      expect(existsSync(join(dir, 'pg_wal', 'RECOVERYXLOG'))).toBe(false);
    } finally {
      await aws(['s3', 'rm', `${base}${twin}`]);
      rmSync(join(dir, 'recovery.signal'), { force: true });
    }
    expect((await worker).code).toBe(0);
    expect(prefetchDirOf(dir)).toBeUndefined();
    expect(statSync(join(dir, 'pg_wal')).isDirectory()).toBe(true);
  }, 300_000);

  it('a corrupt segment in the bucket: the worker does not hand it over, wal-fetch stops recovery (exit 126) and the server never promotes', async () => {
    const { stdout } = await execFileAsync(
      'aws',
      ['s3', 'ls', `s3://${setup.bucket}/prefetch/wal/${sysid}/`, '--endpoint-url', services().s3.endpoint],
      { env: awsEnv() },
    );
    const keys = stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/).pop() ?? '')
      .filter((k) => /^00000001[0-9A-F]{16}~/.test(k))
      .sort();
    // The segment after the base backup's first gets another segment's (validly encoded) bytes: its sha256 no longer matches its key.
    const victim = keys.find((k) => k.slice(0, 24) > firstSegment)!;
    const other = keys[keys.length - 1]!;
    const base = `s3://${setup.bucket}/prefetch/wal/${sysid}/`;
    const aws = (args: string[]) => execFileAsync('aws', [...args, '--endpoint-url', services().s3.endpoint], { env: awsEnv() });
    await aws(['s3', 'cp', `${base}${victim}`, `s3://${setup.bucket}/aside/${victim}`]);
    await aws(['s3', 'cp', `${base}${other}`, `${base}${victim}`]);
    try {
      const dir = await postgresDir(join(setup.dir, 'corrupt'));
      const r = await setup.run(['restore', '--env-file', setup.envFile, '--latest', '--pgdata', dir, '--no-archive']);
      expect(r.code, r.stderr).toBe(0);
      // pg_ctl -w fails when recovery stops before the data is consistent; after that point the
      // server accepts read-only connections first, and its startup process then fails: both never promote.
      let log: string;
      try {
        const server = await startDataDir(setup, dir, pg.password, pg.bindir);
        const deadline = Date.now() + 120_000;
        while (!readFileSync(server.log, 'utf8').includes('is corrupt') && Date.now() < deadline) await sleep(300);
        expect(await server.query('SELECT pg_is_in_recovery()').catch(() => 'stopped')).not.toBe('f');
        log = readFileSync(server.log, 'utf8');
        await server.stop();
      } catch (e) {
        log = (e as Error).message;
      }
      expect(log).toContain(`${victim.slice(0, 24)} from`);
      expect(log).toMatch(/is corrupt: its sha256 is [0-9a-f]{64}, the archive recorded/);
      expect(log).not.toMatch(/selected new timeline ID|archive recovery complete/);
      rmSync(join(dir, 'recovery.signal'), { force: true }); // the worker ends
    } finally {
      await aws(['s3', 'cp', `s3://${setup.bucket}/aside/${victim}`, `${base}${victim}`]);
    }
  }, 300_000);
});
