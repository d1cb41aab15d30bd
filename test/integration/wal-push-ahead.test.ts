import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { RUNUSER, psql, startCluster, type PgCluster } from '../helpers/postgres-cluster.js';
import { pitrSetup, type PitrSetup } from '../helpers/pitr.js';
import { waitFor } from '../helpers/processes.js';
import { awsKeys } from '../helpers/restore-fixtures.js';

const execFileAsync = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const CLIENT = join(REPO_ROOT, 'bin', 'pgbak-wal-push');

/**
 * The cold start of the push-ahead worker (issue 11, Speed): PostgreSQL's call for a segment with
 * no worker running starts one (sh client or node's fast path), which pushes from that segment on,
 * and the call exits 0 only once its segment is in the bucket. archive_command stays empty here so
 * that the calls are ours: each is run by hand as PostgreSQL would (the postgres user, in the data
 * directory, `%p` = pg_wal/<segment>), on segments waiting `.ready`.
 */
describe('wal-push cold start: the first call starts the push-ahead worker and waits for its own segment (real PostgreSQL, MinIO, gpg)', () => {
  let setup: PitrSetup;
  let pg: PgCluster;
  let sysid: string;
  const spool = () => join(pg.dataDir, 'pg_wal', 'pgbak_spool');
  const lockPid = (): number | undefined => {
    try {
      return (JSON.parse(readFileSync(join(spool(), 'worker.lock'), 'utf8')) as { pid?: number }).pid;
    } catch {
      return undefined;
    }
  };
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  /** The worker of the previous case has ended (idle limit), so the next call is a cold start. */
  const noWorker = () => waitFor(() => lockPid() === undefined || !alive(lockPid()!), 60_000, 'the push-ahead worker to end');
  /** Write a little WAL and switch `n` times: `n` new segments wait `.ready` (archive_command is empty). */
  const newSegments = async (n: number): Promise<string[]> => {
    const names: string[] = [];
    for (let i = 0; i < n; i++) {
      await psql(pg, 'postgres', 'INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g');
      names.push(await psql(pg, 'postgres', 'SELECT pg_walfile_name(pg_switch_wal())'));
    }
    return names;
  };
  /** archive_command's call: the sh client, or node bin/pgbak, as the postgres user in the data directory. */
  const call = async (client: 'sh' | 'node', name: string) => {
    const argv =
      client === 'sh'
        ? ['/bin/sh', CLIENT, '--env-file', setup.envFile, `pg_wal/${name}`]
        : [process.execPath, join(REPO_ROOT, 'bin', 'pgbak'), 'wal-push', '--env-file', setup.envFile, `pg_wal/${name}`];
    const [cmd, ...rest] = isRoot ? [RUNUSER, '-u', 'postgres', '--', ...argv] : argv;
    try {
      const r = await execFileAsync(cmd!, rest, {
        cwd: pg.dataDir,
        env: { PATH: process.env.PATH ?? '', HOME: setup.dir, PGBAK_NODE: process.execPath },
      });
      return { code: 0, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stderr: e.stderr ?? '' };
    }
  };
  /** The archived object of `name` whose key carries the sha256 of the segment in pg_wal, if any. */
  const storedWithSha = async (name: string) => {
    const sha = createHash('sha256')
      .update(readFileSync(join(pg.dataDir, 'pg_wal', name)))
      .digest('hex');
    return (await awsKeys(setup.bucket)).find((k) => k.startsWith(`pitr/wal/${sysid}/${name}~${sha}.zst.gpg`));
  };

  beforeAll(async () => {
    setup = await pitrSetup();
    pg = await startCluster({ config: ['wal_level = replica', 'archive_mode = on', "archive_command = ''"] });
    sysid = await psql(pg, 'postgres', 'SELECT system_identifier FROM pg_control_system()');
    await psql(pg, 'postgres', 'CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 1000) g');
  });
  afterAll(async () => {
    const pid = pg ? lockPid() : undefined;
    if (pid && alive(pid)) process.kill(pid, 'SIGTERM');
    await pg?.stop();
  });

  it('sh client, no worker running: the call starts one, exits 0 with its segment in the bucket, and the worker pushes the backlog after it', async () => {
    await noWorker();
    const [first, ...later] = await newSegments(3);
    const r = await call('sh', first!);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`archived ahead by an earlier wal-push file=${first}`));
    // Stored before the exit: the object is there at once, under the sha256 of the segment's bytes.
    expect(await storedWithSha(first!)).toBeDefined();
    // The worker went on with the later `.ready` segments; their calls are answered from the spool.
    for (const name of later) {
      const c = await call('sh', name);
      expect(c.code, c.stderr).toBe(0);
      expect(c.stderr).toMatch(/archived ahead by an earlier wal-push/);
      expect(await storedWithSha(name)).toBeDefined();
    }
  });

  it('node fast path (pgbak wal-push), no worker running: the same, one node start with the S3 client', async () => {
    await noWorker();
    const [name] = await newSegments(1);
    const r = await call('node', name!);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`archived ahead by an earlier wal-push file=${name}`));
    expect(await storedWithSha(name!)).toBeDefined();
    // Answered from the worker's record as soon as it was written, not when the worker ended (its idle limit).
    const pid = lockPid();
    expect(pid !== undefined && alive(pid), 'the worker still runs when the call has returned').toBe(true);
  });

  it("a base backup's history file: the running worker stores it too, and PostgreSQL's call for it is answered from the spool", async () => {
    await noWorker();
    // A base backup's start and stop (not waiting for the archive, which is off): a .backup file waits .ready.
    await psql(pg, 'postgres', "SELECT pg_backup_start('pgbak-test', true); SELECT lsn FROM pg_backup_stop(false)");
    const [next] = await newSegments(1);
    const ready = readdirSync(join(pg.dataDir, 'pg_wal', 'archive_status'));
    const backup = ready.find((f) => f.endsWith('.backup.ready'))?.slice(0, -'.ready'.length);
    expect(backup, ready.join(' ')).toMatch(/^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/);
    // The archiver's order: every segment before it, then the history file.
    const pending = ready
      .filter((f) => /^[0-9A-F]{24}\.ready$/.test(f))
      .map((f) => f.slice(0, 24))
      .sort();
    for (const name of pending.filter((n) => n < backup!)) expect((await call('sh', name)).code).toBe(0);
    const r = await call('sh', backup!);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`archived ahead by an earlier wal-push file=${backup}`);
    const keys = await awsKeys(setup.bucket);
    expect(keys.some((k) => k.startsWith(`pitr/wal/${sysid}/${backup}~`))).toBe(true);
    for (const name of pending.filter((n) => n > backup!)) expect((await call('sh', name)).code).toBe(0);
    expect(next! > backup!).toBe(true);
  });

  it('the settings file edited while a worker runs: that worker ends, and the next call pushes with the new settings', async () => {
    await noWorker();
    const [first] = await newSegments(1);
    expect((await call('sh', first!)).code).toBe(0);
    const pid = lockPid();
    expect(pid !== undefined && alive(pid), 'a worker idles after its backlog').toBe(true);
    try {
      setup.writeEnv({ STORAGE_PREFIX: 'pitr-moved/' });
      // Well before its idle limit (10 s): it looks at the settings files at every scan.
      await waitFor(() => !alive(pid!), 5_000, 'the worker started with the old settings to end');
      const [next] = await newSegments(1);
      const r = await call('sh', next!);
      expect(r.code, r.stderr).toBe(0);
      const sha = createHash('sha256')
        .update(readFileSync(join(pg.dataDir, 'pg_wal', next!)))
        .digest('hex');
      const keys = await awsKeys(setup.bucket);
      expect(keys.filter((k) => k.includes(`/${next}~`))).toEqual([`pitr-moved/wal/${sysid}/${next}~${sha}.zst.gpg`]);
    } finally {
      setup.writeEnv({ STORAGE_PREFIX: 'pitr/' });
    }
  });

  it('the worker killed mid-way: the call still ends with its segment stored (it pushes it itself), and the next cold start takes over the dead lock', async () => {
    await noWorker();
    const names = await newSegments(3);
    const running = call('sh', names[0]!);
    // Kill the worker as soon as it holds the lock (loading the S3 client, or pushing).
    const pid = await waitFor(() => lockPid(), 120_000, 'the worker to take the lock');
    process.kill(pid, 'SIGKILL');
    const r = await running;
    expect(r.code, r.stderr).toBe(0);
    expect(await storedWithSha(names[0]!)).toBeDefined();
    // The lock of the killed worker is left behind; the next call starts a new worker that takes it over.
    await noWorker();
    for (const name of names.slice(1)) {
      const c = await call('sh', name);
      expect(c.code, c.stderr).toBe(0);
      expect(await storedWithSha(name)).toBeDefined();
    }
  });
});
