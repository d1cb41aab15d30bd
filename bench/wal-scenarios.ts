/**
 * The WAL scenarios of issue 11 (`npm run bench -- --scenarios wal`): how fast `pgbak wal-push`
 * archives as archive_command, whether pgbench's `.ready` backlog stays bounded, and pgbak's
 * base backup and restore-to-running beside pgBackRest's on the same cluster in the same run.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { readFileSync, mkdirSync, writeFileSync, chownSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, psql } from '../test/helpers/postgres-cluster.js';
import { measure, type Measurement } from './measure.js';
import type { BenchContext, RunResult, Scenario } from './scenarios.js';
import {
  archiveCommand,
  archiverCounts,
  asPostgres,
  readCalls,
  readyCount,
  removeDir,
  setArchiveCommand,
  waitDrained,
  walBench,
  type WalBench,
} from './wal-setup.js';

const execFileAsync = promisify(execFile);
const SEGMENT = 16 * 1024 * 1024;
/** Segments each wal_push run leaves `.ready` for the archiver. */
const BACKLOG = 24;
const PGBENCH = { clients: 4, seconds: 60, scale: 10 } as const;

const pctl = (xs: readonly number[], p: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};
const med = (xs: readonly number[]) => pctl(xs, 0.5);

function plain(wallMs: number, load1: number, steps: Record<string, number>, cpuMs: number | null = null): RunResult {
  return { wallMs, cpuMs, pgbakMaxRssKiB: null, pgbakCpuMs: null, treeMaxRssKiB: null, outputBytes: 0, load1, steps };
}
const load = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

/** Write WAL until `segments` full segments are past, then switch: they wait `.ready` while archive_command is ''. */
async function makeWal(ctx: BenchContext, segments: number): Promise<void> {
  const lsn = (await psql(ctx.pg, 'postgres', 'SELECT pg_current_wal_lsn() - $$0/0$$::pg_lsn').then(Number)) as number;
  await psql(ctx.pg, 'postgres', 'CREATE TABLE IF NOT EXISTS bench_walgen (g bigint, h text, pad text)');
  for (let i = 0; ; i++) {
    const now = Number(await psql(ctx.pg, 'postgres', 'SELECT pg_current_wal_lsn() - $$0/0$$::pg_lsn'));
    if (now - lsn >= segments * SEGMENT) break;
    await psql(
      ctx.pg,
      'postgres',
      `INSERT INTO bench_walgen SELECT g, md5(g::text), repeat(md5((g % 997)::text), 3) || g FROM generate_series(${i * 100_000}, ${i * 100_000 + 99_999}) g`,
    );
  }
  await psql(ctx.pg, 'postgres', 'SELECT pg_switch_wal(); TRUNCATE bench_walgen');
}

/** pgbak basebackup, or pgBackRest's backup, then its restore into a new directory and a start until promoted. */
async function backupRestoreStart(ctx: BenchContext, w: WalBench, tool: 'pgbak' | 'pgbak_same_work' | 'pgbackrest'): Promise<RunResult> {
  await setArchiveCommand(ctx.pg, archiveCommand(w));
  await waitDrained(ctx.pg, 300_000);
  const load1 = load();
  const pgbak = (args: string[], extra: NodeJS.ProcessEnv = {}) => {
    const envFile = tool === 'pgbak_same_work' ? w.sameWorkEnvFile : w.envFile;
    const [command, a] = asPostgres([process.execPath, ctx.pgbakBin, ...args, '--env-file', envFile]);
    return measure({ command, args: a, env: { PATH: process.env.PATH, HOME: w.dir, ...ctx.pgbakExtra, ...extra } }, ctx.scratch);
  };
  const rest = (args: string[]) => {
    const [command, a] = asPostgres([...w.pgbackrest!.argv, ...args]);
    return measure({ command, args: a, env: w.pgbackrest!.env }, ctx.scratch);
  };
  const backup =
    tool === 'pgbackrest' ? await rest(['--type=full', 'backup']) : await pgbak(['basebackup'], { DATABASE_URL: ctx.pg.url('postgres') });
  const base = join(w.dir, `restore-${tool}-${++ctx.state.runs}`);
  mkdirSync(base, { mode: 0o700 });
  const pgdata = join(base, 'data');
  mkdirSync(pgdata, { mode: 0o700 });
  const owner = statSync(w.dir);
  chownSync(base, owner.uid, owner.gid);
  chownSync(pgdata, owner.uid, owner.gid);
  try {
    const restore =
      tool === 'pgbackrest'
        ? await rest([`--pg1-path=${pgdata}`, '--archive-mode=off', 'restore'])
        : await pgbak(['restore', '--latest', '--pgdata', pgdata, '--no-archive']);
    const start = await startUntilPromoted(ctx, base, pgdata);
    const parts: Measurement[] = [backup, restore];
    const cpu = parts.every((m) => m.cpuMs !== null) ? parts.reduce((s, m) => s + m.cpuMs!, 0) : null;
    return {
      ...plain(backup.wallMs + restore.wallMs + start, load1, {
        backup: Math.round(backup.wallMs),
        restore: Math.round(restore.wallMs),
        start: Math.round(start),
        restoreToRunning: Math.round(restore.wallMs + start),
        backupCpu: Math.round(backup.cpuMs ?? 0),
        restoreCpu: Math.round(restore.cpuMs ?? 0),
      }),
      cpuMs: cpu,
      treeMaxRssKiB: Math.max(backup.treeMaxRssKiB ?? 0, restore.treeMaxRssKiB ?? 0) || null,
      outputBytes: dirBytes(
        {
          pgbak: join(w.dir, 'backups'),
          pgbak_same_work: join(w.dir, 'backups-same-work'),
          pgbackrest: join(w.dir, 'pgbackrest-repo', 'backup'),
        }[tool],
      ),
    };
  } finally {
    removeDir(base);
  }
}

/** `pg_ctl start -w`, then poll until the restored server has left recovery; milliseconds. */
async function startUntilPromoted(ctx: BenchContext, base: string, pgdata: string): Promise<number> {
  const port = await freePort();
  const log = join(base, 'server.log');
  writeFileSync(log, '');
  const st = statSync(base);
  chownSync(log, st.uid, st.gid);
  const started = performance.now();
  const ctl = (args: string[]) => asPostgres([join(ctx.pg.bindir, 'pg_ctl'), '-D', pgdata, ...args]);
  const [cmd, args] = ctl([
    '-l',
    log,
    '-w',
    '-t',
    '300',
    'start',
    '-o',
    `-p ${port} -k ${base} -c listen_addresses=127.0.0.1 -c archive_mode=off`,
  ]);
  try {
    await execFileAsync(cmd, args);
    const url = (db: string) => `postgresql://postgres:${encodeURIComponent(ctx.pg.password)}@127.0.0.1:${port}/${db}`;
    for (;;) {
      const r = await psql({ url, bindir: ctx.pg.bindir }, 'postgres', 'SELECT pg_is_in_recovery()').catch(() => 't');
      if (r === 'f') break;
      if (performance.now() - started > 300_000)
        throw new Error(`still in recovery after 300 s\n${readFileSync(log, 'utf8').slice(-3000)}`);
      await new Promise((r2) => setTimeout(r2, 100));
    }
    return performance.now() - started;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${readFileSync(log, 'utf8').slice(-3000)}`);
  } finally {
    const [c, a] = ctl(['-m', 'immediate', '-w', 'stop']);
    await execFileAsync(c, a).catch(() => undefined);
  }
}

function dirBytes(path: string): number {
  let total = 0;
  try {
    for (const e of readdirSync(path, { withFileTypes: true, recursive: true })) {
      if (e.isFile()) total += statSync(join(e.parentPath, e.name)).size;
    }
  } catch {
    return 0;
  }
  return total;
}

/** PostgreSQL's archiver drains BACKLOG `.ready` segments through `client` (the sh client or node). */
function walPush(client: 'sh' | 'node'): Scenario {
  return {
    id: client === 'sh' ? 'wal_push' : 'wal_push_node',
    title:
      client === 'sh'
        ? `archive_command = pgbak-wal-push (sh client): ${BACKLOG} segments left .ready, drained by PostgreSQL's archiver (zstd + gpg + MinIO)`
        : `archive_command = pgbak wal-push (node on every call): ${BACKLOG} segments left .ready, drained by the archiver`,
    command:
      client === 'sh'
        ? "archive_command = 'pgbak-wal-push --env-file wal.env %p'"
        : "archive_command = 'pgbak wal-push --env-file wal.env %p'",
    async run(ctx) {
      const w = await walBench(ctx);
      const wrapper = client === 'sh' ? w.wrapper : w.nodeWrapper;
      await setArchiveCommand(ctx.pg, '');
      await makeWal(ctx, BACKLOG);
      const waiting = readyCount(ctx.pg);
      writeFileSync(w.callLog, '');
      const before = await archiverCounts(ctx.pg);
      const cpu0 = await cpuSnapshot(ctx);
      const load1 = load();
      const t0 = performance.now();
      await setArchiveCommand(ctx.pg, `${wrapper} %p`);
      const drain = await waitDrained(ctx.pg, 600_000);
      const ms = performance.now() - t0;
      const after = await archiverCounts(ctx.pg);
      const cpu = cpuPerSegment(cpu0, await cpuSnapshot(ctx, true), waiting);
      const calls = readCalls(readFileSync(w.callLog, 'utf8'));
      const pushed = calls.filter((c) => c.kind === 'push').map((c) => c.ms);
      const ahead = calls.filter((c) => c.kind === 'ahead').map((c) => c.ms);
      return plain(ms, load1, {
        segments: waiting,
        segmentsPerSecond: waiting / drain,
        medianCallMs: med(calls.map((c) => c.ms)),
        p90CallMs: pctl(
          calls.map((c) => c.ms),
          0.9,
        ),
        pushingCalls: pushed.length,
        medianPushingCallMs: med(pushed),
        answeredAheadCalls: ahead.length,
        medianAheadCallMs: med(ahead),
        failedCalls: after.failed - before.failed,
        ...cpu,
      });
    },
  };
}

/**
 * CPU seconds so far of what archiving costs on this host: the archive_command calls (children the
 * archiver waited for: the wrapper, the sh client or node), the push-ahead workers (detached: each
 * logs its own CPU, with its zstd and gpg, to pg_wal/pgbak_spool/worker.log when it ends) and the
 * S3 server (MinIO's process). `settle`: first wait for the workers to end.
 */
interface CpuSnapshot {
  readonly calls: number;
  readonly workers: number;
  readonly s3: number;
}

async function cpuSnapshot(ctx: BenchContext, settle = false): Promise<CpuSnapshot> {
  const spool = join(ctx.pg.dataDir, 'pg_wal', 'pgbak_spool');
  if (settle) {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      let pid: number | undefined;
      try {
        pid = (JSON.parse(readFileSync(join(spool, 'worker.lock'), 'utf8')) as { pid?: number }).pid;
      } catch {
        break;
      }
      if (pid === undefined || procTicks(pid, false) === undefined) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const archiver = Number(await psql(ctx.pg, 'postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'"));
  let workers = 0;
  try {
    for (const m of readFileSync(join(spool, 'worker.log'), 'utf8').matchAll(/push-ahead worker done .*?cpuSeconds=([\d.]+)/g))
      workers += Number(m[1]);
  } catch {
    // No worker ran yet.
  }
  const s3pid = ctx.s3.process?.pid;
  return {
    calls: (procTicks(archiver, true) ?? 0) / 100,
    workers,
    s3: s3pid ? (procTicks(s3pid, false) ?? 0) / 100 : 0,
  };
}

/** utime + stime (and with `children`, cutime + cstime) of a process, in clock ticks; undefined when it is gone. */
function procTicks(pid: number, children: boolean): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z') return undefined;
    return (children ? [11, 12, 13, 14] : [11, 12]).reduce((sum, i) => sum + Number(f[i]), 0);
  } catch {
    return undefined;
  }
}

function cpuPerSegment(a: CpuSnapshot, b: CpuSnapshot, segments: number): Record<string, number> {
  const per = (x: number) => (segments > 0 ? (x * 1000) / segments : 0);
  const calls = per(b.calls - a.calls);
  const workers = per(b.workers - a.workers);
  const s3 = per(b.s3 - a.s3);
  return { cpuPerSegmentMs: calls + workers + s3, callsCpuPerSegmentMs: calls, workerCpuPerSegmentMs: workers, s3CpuPerSegmentMs: s3 };
}

/** Why the pgBackRest scenario cannot run here, or undefined when `pgbackrest` is installed. */
export function pgbackrestMissing(): string | undefined {
  const r = spawnSync('pgbackrest', ['version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'pgbackrest is not installed (apt-get install pgbackrest): wal_base_pgbackrest is skipped';
}

/** The WAL scenarios; ids start with `wal_` (selected together with `--scenarios wal`). */
export function walScenarios(): Scenario[] {
  return [
    walPush('sh'),
    walPush('node'),
    {
      id: 'wal_serial',
      title: 'pgbak wal-push called 8 times in a row on copies of segments (no push-ahead): the cost of one full push',
      command: 'pgbak wal-push --env-file wal.env --set STORAGE_PREFIX=serial-N/ COPY (× 8)',
      async run(ctx) {
        const w = await walBench(ctx);
        const dir = join(w.dir, 'serial');
        const files = await serialSegments(ctx, w, dir);
        const prefix = `serial-${++ctx.state.runs}/`;
        const load1 = load();
        const ms: number[] = [];
        let cpu = 0;
        for (const f of files) {
          const [command, args] = asPostgres([
            process.execPath,
            ctx.pgbakBin,
            'wal-push',
            '--env-file',
            w.envFile,
            '--set',
            `STORAGE_PREFIX=${prefix}`,
            join(dir, f),
          ]);
          const m = await measure({ command, args, env: { PATH: process.env.PATH, HOME: w.dir }, cwd: dir }, ctx.scratch);
          ms.push(m.wallMs);
          cpu += m.cpuMs ?? 0;
        }
        const total = ms.reduce((a, b) => a + b, 0);
        return plain(
          total,
          load1,
          {
            segments: files.length,
            segmentsPerSecond: (files.length * 1000) / total,
            medianCallMs: med(ms),
            cpuPerCallMs: cpu / files.length,
          },
          cpu,
        );
      },
    },
    {
      id: 'wal_pgbench',
      title: `pgbench -c ${PGBENCH.clients} -T ${PGBENCH.seconds} (scale ${PGBENCH.scale}, full_page_writes on) while pgbak wal-push archives: the .ready backlog`,
      command: `pgbench -c ${PGBENCH.clients} -j 2 -T ${PGBENCH.seconds} -n; archive_command = 'pgbak wal-push --env-file wal.env %p'`,
      async run(ctx) {
        const w = await walBench(ctx);
        await ensurePgbench(ctx);
        await setArchiveCommand(ctx.pg, `${w.wrapper} %p`);
        await waitDrained(ctx.pg, 300_000);
        await psql(ctx.pg, 'postgres', 'CHECKPOINT');
        const lsn0 = Number(await psql(ctx.pg, 'postgres', 'SELECT pg_current_wal_lsn() - $$0/0$$::pg_lsn'));
        const before = await archiverCounts(ctx.pg);
        const cpu0 = await cpuSnapshot(ctx);
        const load1 = load();
        const samples: number[] = [];
        const sampler = setInterval(() => samples.push(readyCount(ctx.pg)), 1000);
        const t0 = performance.now();
        const out = await runPgbench(ctx);
        const loadMs = performance.now() - t0;
        clearInterval(sampler);
        const lsn1 = Number(await psql(ctx.pg, 'postgres', 'SELECT pg_current_wal_lsn() - $$0/0$$::pg_lsn'));
        const atEnd = readyCount(ctx.pg);
        const drain = await waitDrained(ctx.pg, 600_000);
        const after = await archiverCounts(ctx.pg);
        const cpu = cpuPerSegment(cpu0, await cpuSnapshot(ctx, true), after.archived - before.archived);
        const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 0);
        const walSegments = (lsn1 - lsn0) / SEGMENT;
        return plain(loadMs + drain * 1000, load1, {
          walSegments,
          walSegmentsPerSecond: walSegments / (loadMs / 1000),
          archived: after.archived - before.archived,
          failed: after.failed - before.failed,
          maxReady: Math.max(0, ...samples, atEnd),
          readyAtEnd: atEnd,
          drainSeconds: drain,
          tps,
          ...cpu,
        });
      },
    },
    ...(['pgbackrest', 'pgbak', 'pgbak_same_work'] as const).map(
      (tool): Scenario => ({
        id: `wal_base_${tool}`,
        title: {
          pgbak:
            'pgbak basebackup (zstd + gpg + BACKUP_DIR + MinIO), then pgbak restore --latest --pgdata DIR (from MinIO) and pg_ctl start until promoted',
          pgbak_same_work:
            "pgbak basebackup doing pgBackRest's work (zstd 3 into a local BACKUP_DIR, no gpg, no bucket), then restore --latest --pgdata DIR and pg_ctl start until promoted",
          pgbackrest: 'pgBackRest 2.45 backup --type=full (zst 3, process-max 2, posix repo), then restore and pg_ctl start until promoted',
        }[tool],
        command:
          tool === 'pgbackrest'
            ? 'pgbackrest --stanza=bench --type=full backup; pgbackrest --stanza=bench --pg1-path=DIR --archive-mode=off restore; pg_ctl start'
            : `pgbak basebackup --env-file ${tool === 'pgbak' ? 'wal.env' : 'same-work.env'}; pgbak restore --latest --pgdata DIR --no-archive; pg_ctl start`,
        async run(ctx) {
          const w = await walBench(ctx);
          if (tool === 'pgbackrest' && !w.pgbackrest) throw new Error(w.pgbackrestMissing);
          return backupRestoreStart(ctx, w, tool);
        },
      }),
    ),
  ];
}

/** Eight segment copies for wal_serial, made once: fresh segments, copied while they wait `.ready`. */
async function serialSegments(ctx: BenchContext, w: WalBench, dir: string): Promise<string[]> {
  try {
    const have = readdirSync(dir).sort();
    if (have.length > 0) return have;
  } catch {
    mkdirSync(dir, { mode: 0o755 });
  }
  await setArchiveCommand(ctx.pg, '');
  await makeWal(ctx, 8);
  const wal = join(ctx.pg.dataDir, 'pg_wal');
  const names = readdirSync(join(wal, 'archive_status'))
    .filter((n) => /^[0-9A-F]{24}\.ready$/.test(n))
    .map((n) => n.slice(0, 24))
    .sort()
    .slice(0, 8);
  const st = statSync(w.dir);
  for (const n of names) {
    writeFileSync(join(dir, n), readFileSync(join(wal, n)));
    chownSync(join(dir, n), st.uid, st.gid);
  }
  chownSync(dir, st.uid, st.gid);
  await setArchiveCommand(ctx.pg, `${w.wrapper} %p`);
  await waitDrained(ctx.pg, 300_000);
  return names;
}

let pgbenchReady = false;
async function ensurePgbench(ctx: BenchContext): Promise<void> {
  if (pgbenchReady) return;
  await psql(ctx.pg, 'postgres', 'DROP DATABASE IF EXISTS bench_pgbench; CREATE DATABASE bench_pgbench');
  const env = { PATH: process.env.PATH, PGPASSWORD: ctx.pg.password };
  await execFileAsync(
    join(ctx.pg.bindir, 'pgbench'),
    ['-i', '-q', '-s', String(PGBENCH.scale), '-h', ctx.pg.host, '-p', String(ctx.pg.port), '-U', 'postgres', 'bench_pgbench'],
    { env },
  );
  pgbenchReady = true;
}

function runPgbench(ctx: BenchContext): Promise<string> {
  return new Promise((resolve, reject) => {
    const args = [
      '-c',
      String(PGBENCH.clients),
      '-j',
      '2',
      '-T',
      String(PGBENCH.seconds),
      '-n',
      '-h',
      ctx.pg.host,
      '-p',
      String(ctx.pg.port),
      '-U',
      'postgres',
      'bench_pgbench',
    ];
    const child = spawn(join(ctx.pg.bindir, 'pgbench'), args, { env: { PATH: process.env.PATH, PGPASSWORD: ctx.pg.password } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`pgbench exited ${code}: ${out.slice(-2000)}`))));
  });
}
