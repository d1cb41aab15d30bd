/**
 * `npm run bench -- --scaling 200MB,800MB,3200MB|none [--reps 1] [--many 50]`: the scaling table of
 * issue 16. For each size, a dataset of its own, then (d) `pgbak backup` (gzip:9 + gpg + upload)
 * and `pgbak restore --parallel 2` of that backup: wall time per GB and peak RSS, so one sees that
 * time grows linearly with the size and memory does not. Then the many-databases row: N
 * databases of 10 MB, one `pgbak backup` per database one after the other, against N sequential
 * bare `pg_dump -Fc -Z9 -f`. Writes bench/results/<date>-<host>-scaling.json and prints the table.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createGpgHome } from '../test/helpers/gpg-home.js';
import { startS3Server } from '../test/helpers/minio.js';
import { psql, startCluster } from '../test/helpers/postgres-cluster.js';
import { createDataset } from './dataset.js';
import { parseSize } from './environment.js';
import { measure } from './measure.js';
import { pgbakEnv, pgEnv, scenarios, type BenchContext, type RunResult } from './scenarios.js';

const execFileAsync = promisify(execFile);
const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
const log = (msg: string) => process.stderr.write(`[scaling ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

export interface ScalingRow {
  readonly size: string;
  readonly datasetBytes: number;
  readonly backup: RunResult[];
  readonly restore: RunResult[];
}

export interface ManyRow {
  readonly databases: number;
  readonly bytesEach: number;
  readonly pgbakWallMs: number;
  readonly pgbakCpuMs: number | null;
  readonly pgbakMaxRssKiB: number | null;
  readonly bareWallMs: number;
  readonly bareCpuMs: number | null;
  /** One `pgbak backup` with BACKUP_DATABASES listing the N databases, at each BACKUP_CONCURRENCY measured. */
  readonly server: readonly {
    readonly concurrency: number;
    readonly wallMs: number;
    readonly cpuMs: number | null;
    readonly maxRssKiB: number | null;
    readonly load1: number;
  }[];
  readonly load1: readonly number[];
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? NaN;

export async function runScaling(opts: { sizes: readonly string[]; reps: number; many: number; out: string }): Promise<void> {
  const cleanups: (() => unknown)[] = [];
  const scratch = mkdtempSync(join(tmpdir(), 'pgbak-scaling-'));
  cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
  try {
    const [pg, s3, gpg] = await Promise.all([startCluster({ log }), startS3Server(log), createGpgHome('bench@pgbak.test')]);
    cleanups.push(
      () => pg.stop(),
      () => s3.stop(),
      () => gpg.remove(),
    );
    const awsEnv = { ...process.env, AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_DEFAULT_REGION: s3.region };
    for (const b of ['bench-seed', 'bench-pgbak'])
      await execFileAsync('aws', ['s3', 'mb', `s3://${b}`, '--endpoint-url', s3.endpoint], { env: awsEnv });
    const all = scenarios({ zstdLevel: 3 });
    const d = all.find((s) => s.id === 'd')!;
    const f = all.find((s) => s.id === 'f_pgbak')!;
    const base = (database: string): BenchContext => ({
      scratch,
      pg,
      database,
      s3,
      gpg,
      pgbakBin: join(REPO, 'bin', 'pgbak'),
      zstdLevel: 3,
      buckets: { seed: 'bench-seed', pgbak: 'bench-pgbak', wal: 'bench-wal' },
      pgbakExtra: {},
      state: { runs: 0 },
    });

    const rows: ScalingRow[] = [];
    // `--scaling none`: the many-databases row alone.
    for (const size of opts.sizes.filter((x) => x && x !== 'none')) {
      const database = `scale_${size.toLowerCase().replace(/[^a-z0-9]/g, '')}`;
      log(`dataset ${size} (${database})`);
      const ds = await createDataset(pg, parseSize(size), log, database);
      const ctx = base(database);
      const row: ScalingRow = { size, datasetBytes: ds.bytes, backup: [], restore: [] };
      for (let i = 0; i < opts.reps; i++) {
        row.backup.push(await d.run(ctx));
        row.restore.push(await f.run(ctx));
        log(
          `${size} rep ${i + 1}: backup ${(row.backup.at(-1)!.wallMs / 1000).toFixed(1)} s, restore ${(row.restore.at(-1)!.wallMs / 1000).toFixed(1)} s`,
        );
      }
      rows.push(row);
      await psql(pg, 'postgres', `DROP DATABASE ${database} WITH (FORCE)`); // disk space for the next size
    }

    let many: ManyRow | undefined;
    if (opts.many > 0) many = await manyDatabases(base('many_src'), opts.many);

    const report = { format: 'pgbak-bench-scaling', version: 1, date: new Date().toISOString(), host: hostname(), rows, many };
    mkdirSync(opts.out, { recursive: true });
    const file = join(opts.out, `${report.date.slice(0, 10)}-${hostname()}-scaling-${opts.sizes.join('+')}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    log(`wrote ${file}`);
    process.stdout.write(`${renderScaling(rows, many)}\n`);
  } finally {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch((e: unknown) => log(`cleanup: ${String(e)}`));
  }
}

/**
 * N databases of 10 MB (one generated, the others copied from it as templates); one `pgbak backup`
 * per database, sequentially, against N sequential bare `pg_dump -Fc -Z9 -f`, and against one
 * whole-server `pgbak backup` (BACKUP_DATABASES naming the N databases: one process, one globals
 * file) at BACKUP_CONCURRENCY 1 (like for like with the sequential runs) and 2.
 */
async function manyDatabases(ctx: BenchContext, n: number): Promise<ManyRow> {
  const { pg } = ctx;
  const each = 10e6;
  log(`many: ${n} databases of 10 MB`);
  const ds = await createDataset(pg, each, log, 'many_src');
  const names = Array.from({ length: n }, (_, i) => `many_${String(i).padStart(3, '0')}`);
  for (const name of names) await psql(pg, 'postgres', `CREATE DATABASE ${name} TEMPLATE many_src`);
  const load1: number[] = [loadavg()[0] ?? 0];
  let bareWall = 0;
  let bareCpu: number | null = 0;
  for (const name of names) {
    const file = join(ctx.scratch, 'many.dump');
    const m = await measure(
      { command: join(pg.bindir, 'pg_dump'), args: ['-Fc', '-Z9', '-f', file], env: { ...pgEnv(ctx), PGDATABASE: name } },
      ctx.scratch,
    );
    statSync(file);
    rmSync(file);
    bareWall += m.wallMs;
    bareCpu = bareCpu === null || m.cpuMs === null ? null : bareCpu + m.cpuMs;
  }
  load1.push(loadavg()[0] ?? 0);
  let wall = 0;
  let cpu: number | null = 0;
  let rss = 0;
  for (const name of names) {
    const dir = join(ctx.scratch, `many-${name}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const env = { ...pgbakEnv(ctx, dir, 'gzip:9'), DATABASE_URL: pg.url(name) };
    const m = await measure({ command: ctx.pgbakBin, args: ['backup', '--json'], env, nodeProbe: true, cwd: dir }, ctx.scratch);
    rmSync(dir, { recursive: true, force: true });
    wall += m.wallMs;
    cpu = cpu === null || m.cpuMs === null ? null : cpu + m.cpuMs;
    rss = Math.max(rss, m.nodeMaxRssKiB ?? 0);
  }
  load1.push(loadavg()[0] ?? 0);
  const server: ManyRow['server'][number][] = [];
  for (const concurrency of [1, 2]) {
    const dir = join(ctx.scratch, `many-server-${concurrency}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const env = {
      ...pgbakEnv(ctx, dir, 'gzip:9'),
      DATABASE_URL: pg.url('postgres'),
      BACKUP_DATABASES: names.join(','),
      BACKUP_CONCURRENCY: String(concurrency),
    };
    const m = await measure({ command: ctx.pgbakBin, args: ['backup', '--json'], env, nodeProbe: true, cwd: dir }, ctx.scratch);
    rmSync(dir, { recursive: true, force: true });
    server.push({ concurrency, wallMs: m.wallMs, cpuMs: m.cpuMs, maxRssKiB: m.nodeMaxRssKiB ?? null, load1: loadavg()[0] ?? 0 });
    log(`many: one server run of ${n} databases, BACKUP_CONCURRENCY=${concurrency}: ${(m.wallMs / 1000).toFixed(1)} s`);
  }
  return {
    databases: n,
    bytesEach: ds.bytes,
    pgbakWallMs: wall,
    pgbakCpuMs: cpu,
    pgbakMaxRssKiB: rss || null,
    bareWallMs: bareWall,
    bareCpuMs: bareCpu,
    server,
    load1,
  };
}

/** The scaling table and the many-databases row, in markdown. */
export function renderScaling(rows: readonly ScalingRow[], many: ManyRow | undefined): string {
  const gb = (bytes: number) => bytes / 1e9;
  const lines = [
    '| dataset | on disk MB | backup wall s | backup s/GB | backup CPU s | backup peak RSS MB | restore wall s | restore s/GB | restore peak RSS MB | load (1 min) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const bw = median(r.backup.map((x) => x.wallMs)) / 1000;
    const rw = median(r.restore.map((x) => x.wallMs)) / 1000;
    const bc = median(r.backup.map((x) => x.cpuMs ?? NaN)) / 1000;
    const brss = Math.max(...r.backup.map((x) => x.pgbakMaxRssKiB ?? 0)) / 1024;
    const rrss = Math.max(...r.restore.map((x) => x.pgbakMaxRssKiB ?? 0)) / 1024;
    const loads = [...r.backup, ...r.restore].map((x) => x.load1);
    lines.push(
      `| ${r.size} | ${(r.datasetBytes / 1e6).toFixed(0)} | ${bw.toFixed(1)} | ${(bw / gb(r.datasetBytes)).toFixed(1)} | ${bc.toFixed(1)} | ${brss.toFixed(0)} | ${rw.toFixed(1)} | ${(rw / gb(r.datasetBytes)).toFixed(1)} | ${rrss.toFixed(0)} | ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} |`,
    );
  }
  if (many) {
    const s = (ms: number | null) => (ms === null ? '–' : (ms / 1000).toFixed(1));
    lines.push(
      '',
      '| many databases | pgbak backup, one per database, sequential: wall s | CPU s | peak RSS MB | bare pg_dump -Fc -Z9, sequential: wall s | CPU s | wall ratio | load (1 min) |',
      '|---|---:|---:|---:|---:|---:|---:|---|',
      `| ${many.databases} × ${(many.bytesEach / 1e6).toFixed(0)} MB | ${s(many.pgbakWallMs)} | ${s(many.pgbakCpuMs)} | ${((many.pgbakMaxRssKiB ?? 0) / 1024).toFixed(0)} | ${s(many.bareWallMs)} | ${s(many.bareCpuMs)} | ${(many.pgbakWallMs / many.bareWallMs).toFixed(2)} | ${many.load1.map((l) => l.toFixed(1)).join(' → ')} |`,
      '',
      '| one server run (BACKUP_DATABASES) | BACKUP_CONCURRENCY | wall s | CPU s | peak RSS MB | wall / bare pg_dumps | wall / separate pgbak runs | CPU / separate pgbak runs | load (1 min) |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...many.server.map(
        (r) =>
          `| ${many.databases} × ${(many.bytesEach / 1e6).toFixed(0)} MB | ${r.concurrency} | ${s(r.wallMs)} | ${s(r.cpuMs)} | ${((r.maxRssKiB ?? 0) / 1024).toFixed(0)} | ${(r.wallMs / many.bareWallMs).toFixed(2)} | ${(r.wallMs / many.pgbakWallMs).toFixed(2)} | ${r.cpuMs === null || many.pgbakCpuMs === null ? '–' : (r.cpuMs / many.pgbakCpuMs).toFixed(2)} | ${r.load1.toFixed(1)} |`,
      ),
    );
  }
  return lines.join('\n');
}
