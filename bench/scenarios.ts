import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { psql, type PgCluster } from '../test/helpers/postgres-cluster.js';
import type { S3Server } from '../test/helpers/minio.js';
import type { GpgHome } from '../test/helpers/gpg-home.js';
import { measure, type CommandSpec, type Measurement } from './measure.js';

/** Everything a scenario needs: the services, the dataset and a scratch directory. */
export interface BenchContext {
  readonly scratch: string;
  readonly pg: PgCluster;
  readonly database: string;
  readonly s3: S3Server;
  readonly gpg: GpgHome;
  /** bin/pgbak */
  readonly pgbakBin: string;
  readonly zstdLevel: number;
  /** Extra pgbak variables (--pgbak-env), e.g. STORAGE_PART_SIZE for profiling. */
  readonly pgbakExtra: Readonly<Record<string, string>>;
  /** Bucket per scenario, created beforehand. */
  readonly buckets: Readonly<Record<'seed' | 'pgbak' | 'wal', string>>;
  /** Outputs kept for the restore scenarios. */
  readonly state: { restoreFile?: string; pgbakBackup?: { name: string; size: number }; runs: number };
}

/** One timed run of a scenario. */
export interface RunResult {
  readonly wallMs: number;
  readonly cpuMs: number | null;
  /** Peak RSS of the pgbak node process (pgbak scenarios only), KiB. */
  readonly pgbakMaxRssKiB: number | null;
  /** Largest RSS of any process of the command's tree, KiB. */
  readonly treeMaxRssKiB: number | null;
  /** CPU time of the pgbak node process itself (without its children). */
  readonly pgbakCpuMs: number | null;
  /** Bytes of the stored result (restores: the archive read). */
  readonly outputBytes: number;
  readonly load1: number;
  /** CPU the PostgreSQL server and the S3 server spent meanwhile, by name (absent in older reports). */
  readonly serverCpuMs?: Readonly<Record<string, number>> | null;
  /** Per-step wall times of a multi-step procedure. */
  readonly steps?: Readonly<Record<string, number>>;
}

/** A benchmark scenario (a)–(f) of issue 7, plus the bare zstd pipes that decide -T0. */
export interface Scenario {
  readonly id: string;
  readonly title: string;
  readonly command: string;
  run(ctx: BenchContext): Promise<RunResult>;
}

/** libpq's environment for the bare tools: nothing secret on any command line. */
export function pgEnv(ctx: BenchContext): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PGHOST: ctx.pg.host,
    PGPORT: String(ctx.pg.port),
    PGUSER: ctx.pg.user,
    PGPASSWORD: ctx.pg.password,
    PGDATABASE: ctx.database,
  };
}

function awsEnv(ctx: BenchContext): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_ACCESS_KEY_ID: ctx.s3.accessKey,
    AWS_SECRET_ACCESS_KEY: ctx.s3.secretKey,
    AWS_DEFAULT_REGION: ctx.s3.region,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/** pgbak's environment: the seed's variables, secrets in the environment only. */
export function pgbakEnv(ctx: BenchContext, dir: string, compression: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GNUPGHOME: ctx.gpg.home,
    DATABASE_URL: ctx.pg.url(ctx.database),
    PG_DUMP_PATH: ctx.pg.bindir,
    BACKUP_DIR: join(dir, 'backups'),
    LOG_FILE: join(dir, 'backup-db.log'),
    BACKUP_COMPRESSION: compression,
    GPG_RECIPIENT: ctx.gpg.email,
    STORAGE_ENDPOINT: ctx.s3.endpoint,
    STORAGE_ACCESS_KEY: ctx.s3.accessKey,
    STORAGE_SECRET_KEY: ctx.s3.secretKey,
    STORAGE_BUCKET: ctx.buckets.pgbak,
    ...ctx.pgbakExtra,
  };
}

const bin = (ctx: BenchContext, tool: string) => join(ctx.pg.bindir, tool);

function runDir(ctx: BenchContext): string {
  const dir = join(ctx.scratch, `run-${++ctx.state.runs}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export function result(m: Measurement, outputBytes: number, steps?: Record<string, number>): RunResult {
  return {
    wallMs: m.wallMs,
    cpuMs: m.cpuMs,
    pgbakMaxRssKiB: m.nodeMaxRssKiB,
    pgbakCpuMs: m.nodeCpuMs,
    treeMaxRssKiB: m.treeMaxRssKiB,
    outputBytes,
    load1: m.load1,
    serverCpuMs: m.serverCpuMs,
    ...(steps ? { steps } : {}),
  };
}

/** The servers' CPU of several steps, added up by server (null when none was measured). */
function sumServerCpu(steps: readonly (Readonly<Record<string, number>> | null)[]): Record<string, number> | null {
  let out: Record<string, number> | null = null;
  for (const step of steps) {
    if (step === null) continue;
    out ??= {};
    for (const [k, v] of Object.entries(step)) out[k] = (out[k] ?? 0) + v;
  }
  return out;
}

/** Several measured steps run one after the other, as one result. */
function sequence(parts: readonly { name: string; m: Measurement }[], outputBytes: number): RunResult {
  const sum = (f: (m: Measurement) => number | null) =>
    parts.reduce<number | null>((s, p) => (s === null || f(p.m) === null ? null : s + f(p.m)!), 0);
  return {
    wallMs: parts.reduce((s, p) => s + p.m.wallMs, 0),
    cpuMs: sum((m) => m.cpuMs),
    pgbakMaxRssKiB: null,
    pgbakCpuMs: null,
    treeMaxRssKiB: parts.reduce<number | null>((s, p) => (p.m.treeMaxRssKiB === null ? s : Math.max(s ?? 0, p.m.treeMaxRssKiB)), null),
    outputBytes,
    load1: parts[0]?.m.load1 ?? 0,
    serverCpuMs: sumServerCpu(parts.map((p) => p.m.serverCpuMs)),
    steps: Object.fromEntries(parts.map((p) => [p.name, Math.round(p.m.wallMs)])),
  };
}

export async function pgbakBackup(
  ctx: BenchContext,
  compression: string,
  extra: Record<string, string> = {},
  local?: { rowCounts: boolean },
): Promise<{ r: RunResult; name: string }> {
  const dir = runDir(ctx);
  // local: the stream path alone (no upload, no gpg), with or without the exact row counts.
  const env = pgbakEnv(ctx, dir, compression);
  if (local) env.BACKUP_ROW_COUNTS = String(local.rowCounts);
  const spec: CommandSpec = {
    command: ctx.pgbakBin,
    args: ['backup', '--json', ...(local ? ['--no-upload', '--no-encrypt'] : [])],
    env: { ...env, ...extra },
    nodeProbe: true,
    cwd: dir,
  };
  const m = await measure(spec, ctx.scratch);
  const out = (JSON.parse(m.stdout) as { results: [{ status: string; name: string; sizeBytes: number; durationMs: number }] }).results[0];
  if (out.status !== 'ok') throw new Error(`pgbak backup ended ${out.status}`);
  rmSync(dir, { recursive: true, force: true });
  // "backup": the run's own time as pgbak reports it (durationMs: from the preflight to the
  // manifest), without node's start-up before it and the retention and report after it.
  return { r: result(m, out.sizeBytes, { backup: out.durationMs }), name: out.name };
}

/** A fresh empty database to restore into (created and dropped outside the timing). */
async function emptyDatabase(ctx: BenchContext): Promise<string> {
  const name = `restore_${++ctx.state.runs}`;
  await psql(ctx.pg, 'postgres', `CREATE DATABASE ${name}`);
  return name;
}

const dropDatabase = (ctx: BenchContext, name: string) => psql(ctx.pg, 'postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);

const pgDumpZ9 = async (ctx: BenchContext, file: string) =>
  measure({ command: bin(ctx, 'pg_dump'), args: ['-Fc', '-Z9', '-f', file], env: pgEnv(ctx) }, ctx.scratch);

/** Every scenario, in the order one repetition runs them. */
export function scenarios(ctx: Pick<BenchContext, 'zstdLevel'>): Scenario[] {
  const z = ctx.zstdLevel;
  const zstdPipe = (threads: boolean): Scenario => ({
    id: threads ? 'zstd_T0' : 'zstd_T1',
    title: `bare pg_dump -Z0 | zstd -${z}${threads ? ' -T0' : ''}`,
    command: `pg_dump -Fc -Z0 | zstd -${z}${threads ? ' -T0' : ''} -q -c > file`,
    async run(c) {
      const file = join(c.scratch, 'pipe.dump.zst');
      const script = `set -o pipefail; "$BENCH_PG_DUMP" -Fc -Z0 | zstd -${z} ${threads ? '-T0 ' : ''}-q -c > "$BENCH_OUT"`;
      const m = await measure(
        { command: 'bash', args: ['-c', script], env: { ...pgEnv(c), BENCH_PG_DUMP: bin(c, 'pg_dump'), BENCH_OUT: file } },
        c.scratch,
      );
      const size = statSync(file).size;
      rmSync(file, { force: true });
      return result(m, size);
    },
  });
  return [
    {
      id: 'a',
      title: 'bare pg_dump -Fc -Z0 > /dev/null',
      command: 'pg_dump -Fc -Z0 > /dev/null',
      async run(c) {
        const m = await measure({ command: bin(c, 'pg_dump'), args: ['-Fc', '-Z0'], env: pgEnv(c), stdout: 'ignore' }, c.scratch);
        return result(m, 0); // the size comes from the warm-up dump
      },
    },
    {
      id: 'b',
      title: 'bare pg_dump -Fc -Z9 -f file',
      command: 'pg_dump -Fc -Z9 -f file',
      async run(c) {
        const file = join(c.scratch, 'b.dump');
        const m = await pgDumpZ9(c, file);
        const size = statSync(file).size;
        // Kept as the input of the bare restore.
        c.state.restoreFile = join(c.scratch, 'restore-input.dump');
        renameSync(file, c.state.restoreFile);
        return result(m, size);
      },
    },
    {
      id: 'c',
      title: "the seed's procedure: pg_dump -Z9 -f, then gpg --encrypt, then aws s3 cp",
      command: 'pg_dump -Fc -Z9 -f f.dump && gpg --encrypt -r KEY -o f.dump.gpg f.dump && aws s3 cp f.dump.gpg s3://…',
      async run(c) {
        const file = join(c.scratch, 'seed.dump');
        const dump = await pgDumpZ9(c, file);
        const encrypt = await measure(
          {
            command: 'gpg',
            args: ['--batch', '--yes', '--trust-model', 'always', '--encrypt', '--recipient', c.gpg.email, '--output', `${file}.gpg`, file],
            env: { PATH: process.env.PATH, HOME: process.env.HOME, GNUPGHOME: c.gpg.home },
          },
          c.scratch,
        );
        const size = statSync(`${file}.gpg`).size;
        const upload = await measure(
          {
            command: 'aws',
            args: [
              's3',
              'cp',
              '--quiet',
              `${file}.gpg`,
              `s3://${c.buckets.seed}/backups/seed-${c.state.runs}.dump.gpg`,
              '--endpoint-url',
              c.s3.endpoint,
            ],
            env: awsEnv(c),
          },
          c.scratch,
        );
        rmSync(file, { force: true });
        rmSync(`${file}.gpg`, { force: true });
        return sequence(
          [
            { name: 'dump', m: dump },
            { name: 'encrypt', m: encrypt },
            { name: 'upload', m: upload },
          ],
          size,
        );
      },
    },
    {
      id: 'd',
      title: "pgbak backup, gzip:9 + gpg + upload (the seed's settings)",
      command: 'BACKUP_COMPRESSION=gzip:9 GPG_RECIPIENT=… STORAGE_…=… pgbak backup',
      async run(c) {
        const { r, name } = await pgbakBackup(c, 'gzip:9');
        c.state.pgbakBackup = { name, size: r.outputBytes };
        return r;
      },
    },
    {
      id: 'e',
      title: `pgbak backup, zstd:${z} + gpg + upload`,
      command: `BACKUP_COMPRESSION=zstd:${z} GPG_RECIPIENT=… STORAGE_…=… pgbak backup`,
      run: async (c) => (await pgbakBackup(c, `zstd:${z}`)).r,
    },
    {
      id: 'e_local',
      title: `pgbak backup, zstd:${z}, no upload, gpg or row counts`,
      command: `BACKUP_COMPRESSION=zstd:${z} BACKUP_ROW_COUNTS=false pgbak backup --no-upload --no-encrypt`,
      run: async (c) => (await pgbakBackup(c, `zstd:${z}`, {}, { rowCounts: false })).r,
    },
    {
      id: 'e_counts',
      title: `pgbak backup, zstd:${z}, no upload or gpg, with the exact row counts`,
      command: `BACKUP_COMPRESSION=zstd:${z} BACKUP_ROW_COUNTS=true pgbak backup --no-upload --no-encrypt`,
      run: async (c) => (await pgbakBackup(c, `zstd:${z}`, {}, { rowCounts: true })).r,
    },
    zstdPipe(true),
    zstdPipe(false),
    {
      id: 'f_bare',
      title: 'bare pg_restore -j 2 of the -Z9 file into an empty database',
      command: 'pg_restore -j 2 -d empty file.dump',
      async run(c) {
        if (!c.state.restoreFile) throw new Error('f_bare needs scenario b first');
        const target = await emptyDatabase(c);
        const m = await measure(
          { command: bin(c, 'pg_restore'), args: ['-j', '2', '-d', target, c.state.restoreFile], env: pgEnv(c) },
          c.scratch,
        );
        await dropDatabase(c, target);
        return result(m, statSync(c.state.restoreFile).size);
      },
    },
    {
      id: 'f_pgbak',
      title: "pgbak restore --parallel 2 of (d)'s backup from the bucket into an empty database",
      command: 'pgbak restore NAME --from remote --target empty --parallel 2',
      async run(c) {
        if (!c.state.pgbakBackup) throw new Error('f_pgbak needs scenario d first');
        const target = await emptyDatabase(c);
        const dir = runDir(c);
        const env = pgbakEnv(c, dir, 'gzip:9');
        const args = ['restore', c.state.pgbakBackup.name, '--from', 'remote', '--target', target, '--parallel', '2', '--json'];
        const m = await measure({ command: c.pgbakBin, args, env, nodeProbe: true, cwd: dir }, c.scratch);
        // The restore's own split: checking and spooling the archive, then pg_restore.
        const out = (JSON.parse(m.stdout) as { results: [{ verifyMs?: number; restoreMs?: number }] }).results[0];
        await dropDatabase(c, target);
        rmSync(dir, { recursive: true, force: true });
        return result(m, c.state.pgbakBackup.size, { verify: Math.round(out.verifyMs ?? 0), restore: Math.round(out.restoreMs ?? 0) });
      },
    },
  ];
}

/** Scenarios whose input another scenario makes: run the maker once, untimed, if it was not selected. */
export const DEPENDS: Readonly<Record<string, string>> = { f_bare: 'b', f_pgbak: 'd' };
