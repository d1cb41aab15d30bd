/**
 * `npm run bench`: pgbak against bare pg_dump and the seed's sequential procedure, on a
 * reproducible dataset in a throwaway cluster, with a throwaway MinIO and GnuPG home.
 *
 *   npm run bench -- [--size 800MB] [--reps 3] [--zstd-level 3] [--scenarios a,b,d | dump | jobs | wal | age | all]
 *                    [--out bench/results] [--docs docs/performance.md | none]
 *                    [--pgbak-env NAME=VALUE …]   (extra pgbak variables, for profiling)
 *   npm run bench -- --scaling 200MB,800MB,3200MB [--reps 1] [--many 50]   (the scaling table, bench/scaling.ts)
 *
 * Without --scenarios the dump scenarios run (`dump`); the WAL scenarios of issue 11 (`wal`: wal-push
 * speed, pgbench's .ready backlog, base backup and restore beside pgBackRest), BACKUP_JOBS's (`jobs`,
 * issue 16) and age's against typage (`age`, issue 13) run only when asked.
 * Scenarios run interleaved (each repetition runs every scenario once, starting one further
 * along), and the report gives medians. Everything started is stopped and removed on exit,
 * on an error and on Ctrl-C.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { createGpgHome, type GpgHome } from '../test/helpers/gpg-home.js';
import { MINIO_VERSION, startS3Server, type S3Server } from '../test/helpers/minio.js';
import { startCluster, type PgCluster } from '../test/helpers/postgres-cluster.js';
import { createDataset } from './dataset.js';
import { machine, parseSize, versions } from './environment.js';
import { haveGnuTime, killCurrent, measure, postmasterPid, watchServers } from './measure.js';
import { judge, summarize, updateDocs, type BenchReport, type ScenarioReport } from './report.js';
import { DEPENDS, pgEnv, scenarios, type BenchContext, type RunResult } from './scenarios.js';
import { pgbackrestMissing, walScenarios } from './wal-scenarios.js';
import { setArchiveCommand, walBench } from './wal-setup.js';
import { ageScenarios, typageMissing } from './scenarios-age.js';
import { jobsScenarios } from './scenarios-jobs.js';

const execFileAsync = promisify(execFile);
const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));
const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

const { values: opts } = parseArgs({
  options: {
    size: { type: 'string', default: '800MB' },
    reps: { type: 'string', default: '3' },
    'zstd-level': { type: 'string', default: '3' },
    scenarios: { type: 'string' },
    out: { type: 'string', default: join(REPO, 'bench', 'results') },
    docs: { type: 'string', default: join(REPO, 'docs', 'performance.md') },
    /** Extra pgbak variables for profiling, e.g. --pgbak-env STORAGE_PART_SIZE=5MiB (repeatable). */
    'pgbak-env': { type: 'string', multiple: true },
    /** The scaling table instead of the scenarios: --scaling 200MB,800MB,3200MB [--many 50] (bench/scaling.ts). */
    scaling: { type: 'string' },
    many: { type: 'string', default: '50' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opts.help) {
  process.stdout.write(`usage: npm run bench -- [--size 800MB] [--reps 3] [--zstd-level 3] [--scenarios a,b,c,d,e,e_local,e_counts,zstd_T0,zstd_T1,f_bare,f_pgbak | dump | jobs | wal | age | all]
                     [--out DIR] [--docs FILE|none] [--pgbak-env NAME=VALUE ...]\n`);
  process.exit(0);
}

// ---- cleanup, also on Ctrl-C ------------------------------------------------------------------
const cleanups: (() => Promise<unknown> | unknown)[] = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch (err) {
        log(`cleanup: ${String(err)}`);
      }
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping and cleaning up`);
    killCurrent();
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  const targetBytes = parseSize(opts.size);
  const reps = Number(opts.reps);
  const zstdLevel = Number(opts['zstd-level']);
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps must be a positive integer');
  if (!Number.isInteger(zstdLevel) || zstdLevel < 1 || zstdLevel > 19) throw new Error('--zstd-level must be 1-19');
  const dump = scenarios({ zstdLevel });
  const wal = walScenarios();
  const jobs = jobsScenarios();
  const age = ageScenarios(zstdLevel);
  const all = [...dump, ...jobs, ...wal, ...age];
  const groups: Record<string, string[]> = {
    dump: dump.map((s) => s.id),
    jobs: jobs.map((s) => s.id),
    wal: wal.map((s) => s.id),
    age: age.map((s) => s.id),
    all: all.map((s) => s.id),
  };
  const wanted = (opts.scenarios ?? 'dump').split(',').flatMap((s) => groups[s.trim()] ?? [s.trim()]);
  for (const id of wanted)
    if (!all.some((s) => s.id === id)) throw new Error(`unknown scenario "${id}" (${all.map((s) => s.id).join(', ')})`);
  const missing = wanted.includes('wal_base_pgbackrest') ? pgbackrestMissing() : undefined;
  if (missing) log(missing);
  const noTypage = wanted.includes('age_typage') ? typageMissing() : undefined;
  if (noTypage) log(noTypage);
  const selected = all.filter(
    (s) => wanted.includes(s.id) && !(missing && s.id === 'wal_base_pgbackrest') && !(noTypage && s.id === 'age_typage'),
  );
  const pgbakExtra: Record<string, string> = {};
  for (const kv of opts['pgbak-env'] ?? []) {
    const i = kv.indexOf('=');
    if (i < 1 || /SECRET|PASSWORD|KEY/i.test(kv.slice(0, i)))
      throw new Error(`--pgbak-env: expected NAME=VALUE without secrets (got "${kv}")`);
    pgbakExtra[kv.slice(0, i)] = kv.slice(i + 1);
  }
  if (!haveGnuTime) log('/usr/bin/time not found: CPU time and process-tree RSS are not measured');
  const load0 = loadavg()[0] ?? 0;

  const scratch = mkdtempSync(join(tmpdir(), 'pgbak-bench-'));
  cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
  log(`scratch ${scratch}; starting PostgreSQL, MinIO and a GnuPG home`);
  const [pg, s3, gpg] = await Promise.all([
    // The WAL scenarios need archive_mode on (a restart); archive_command is set per scenario.
    startCluster({
      log,
      config: wanted.some((id) => id.startsWith('wal_'))
        ? ['archive_mode = on', "archive_command = '/bin/true'", 'max_wal_senders = 4']
        : [],
    }).then((c: PgCluster) => (cleanups.push(() => c.stop()), c)),
    startS3Server(log).then((s: S3Server) => (cleanups.push(() => s.stop()), s)),
    createGpgHome('bench@pgbak.test').then((g: GpgHome) => (cleanups.push(() => g.remove()), g)),
  ]);

  log(`creating the dataset (~${(targetBytes / 1e6).toFixed(0)} MB)`);
  const dataset = await createDataset(pg, targetBytes, log);
  log(`dataset: ${(dataset.bytes / 1e6).toFixed(0)} MB in ${dataset.seconds.toFixed(0)} s`);

  const awsEnv = {
    ...process.env,
    AWS_ACCESS_KEY_ID: s3.accessKey,
    AWS_SECRET_ACCESS_KEY: s3.secretKey,
    AWS_DEFAULT_REGION: s3.region,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  const buckets = { seed: 'bench-seed', pgbak: 'bench-pgbak', wal: 'bench-wal' };
  for (const b of Object.values(buckets))
    await execFileAsync('aws', ['s3', 'mb', `s3://${b}`, '--endpoint-url', s3.endpoint], { env: awsEnv });

  const ctx: BenchContext = {
    scratch,
    pg,
    database: dataset.database,
    s3,
    gpg,
    pgbakBin: join(REPO, 'bin', 'pgbak'),
    zstdLevel,
    buckets,
    pgbakExtra,
    state: { runs: 0 },
  };

  // Every measurement also records what the PostgreSQL server and MinIO spent meanwhile.
  watchServers([
    { name: 'postgres', pid: postmasterPid(pg.dataDir) },
    { name: 's3', pid: s3.process?.pid },
  ]);

  // Warm-up, untimed: the uncompressed dump's size (and a warm page cache), node's modules.
  const z0 = join(scratch, 'warmup.dump');
  await measure({ command: join(pg.bindir, 'pg_dump'), args: ['-Fc', '-Z0', '-f', z0], env: pgEnv(ctx) }, scratch);
  const dumpZ0Bytes = statSync(z0).size;
  rmSync(z0);
  await execFileAsync(process.execPath, [ctx.pgbakBin, '--version']);
  for (const s of selected) {
    const dep = DEPENDS[s.id];
    if (dep && !wanted.includes(dep)) {
      log(`untimed ${dep} first (input of ${s.id})`);
      await all.find((x) => x.id === dep)!.run(ctx);
    }
  }

  // The WAL scenarios restart the server with full_page_writes on and leave archive_command set:
  // set that up before any timed run, and after each WAL scenario archive with /bin/true again, so
  // every repetition of a dump scenario meets the same server, not the archiver pushing its WAL
  // (a restore of 800 MB writes ~60 segments: twice its wall time with pgbak and pgBackRest pushing them).
  const isWal = (id: string) => id.startsWith('wal_');
  if (selected.some((s) => isWal(s.id))) {
    await walBench(ctx);
    await setArchiveCommand(ctx.pg, '/bin/true');
  }
  const runs = new Map<string, RunResult[]>(selected.map((s) => [s.id, []]));
  for (let rep = 0; rep < reps; rep++) {
    // Each repetition starts one scenario further along; the first keeps the natural order,
    // so the restores find their inputs.
    const order = selected.map((_, i) => selected[(i + rep) % selected.length]!);
    for (const s of order) {
      const r = await s.run(ctx);
      if (isWal(s.id)) await setArchiveCommand(ctx.pg, '/bin/true');
      runs.get(s.id)!.push(r);
      const rss = r.pgbakMaxRssKiB !== null ? `, pgbak RSS ${(r.pgbakMaxRssKiB / 1024).toFixed(0)} MB` : '';
      log(
        `rep ${rep + 1}/${reps} ${s.id}: ${(r.wallMs / 1000).toFixed(2)} s wall, ${r.cpuMs === null ? '?' : (r.cpuMs / 1000).toFixed(2)} s CPU${rss}, ${(r.outputBytes / 1e6).toFixed(1)} MB`,
      );
    }
  }

  const reportScenarios: Record<string, ScenarioReport> = {};
  for (const s of selected) {
    const rs = runs.get(s.id)!;
    reportScenarios[s.id] = { title: s.title, command: s.command, runs: rs, median: summarize(rs) };
  }
  const { ratios, targets } = judge(reportScenarios);
  const date = new Date().toISOString();
  const report: BenchReport = {
    format: 'pgbak-bench',
    version: 1,
    date,
    host: hostname(),
    machine: machine(),
    versions: await versions(pg, process.env.S3_TEST_ENDPOINT ? 'external S3' : MINIO_VERSION, REPO),
    dataset: { ...dataset, dumpZ0Bytes },
    options: { reps, zstdLevel, order: selected.map((s) => s.id), pgbakEnv: pgbakExtra },
    scenarios: reportScenarios,
    ratios,
    targets,
    loadAverage: { start: load0, end: loadavg()[0] ?? 0 },
    seconds: (Date.now() - started) / 1000,
  };
  mkdirSync(opts.out, { recursive: true });
  const full = dump.every((s) => wanted.includes(s.id));
  const onlyWal = selected.length === wal.length && wal.every((s) => wanted.includes(s.id));
  const selection =
    full && selected.length === dump.length
      ? ''
      : selected.length === all.length
        ? 'all'
        : onlyWal
          ? 'wal'
          : selected.map((s) => s.id).join('+');
  const variant = [selection, ...Object.entries(pgbakExtra).map(([k, v]) => `${k}=${v}`)].filter(Boolean).join('-');
  const name = `${date.slice(0, 10)}-${hostname()}-${opts.size.replace(/\s+/g, '')}${variant ? `-${variant}` : ''}`;
  const file = join(opts.out, `${name}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  log(`wrote ${file}`);
  if (opts.docs !== 'none') {
    updateDocs(opts.docs, report, opts.out, full && Object.keys(pgbakExtra).length === 0);
    log(`updated ${opts.docs}`);
  }
  for (const t of targets)
    log(`${t.met === null ? '  -' : t.met ? ' ok' : 'MISS'} ${t.name}: ${t.value === null ? '–' : t.value.toFixed(2)} (limit ${t.limit})`);
}

const run = opts.scaling
  ? () =>
      import('./scaling.js').then((m) =>
        m.runScaling({ sizes: opts.scaling!.split(','), reps: Number(opts.reps), many: Number(opts.many), out: opts.out }),
      )
  : main;
run()
  .then(() => cleanup())
  .catch(async (err: unknown) => {
    log(`failed: ${err instanceof Error ? err.message : String(err)}`);
    await cleanup();
    process.exit(1);
  });
