import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from './dataset.js';
import type { RunResult } from './scenarios.js';
import { renderWal, walTargets } from './wal-report.js';

/** Medians of one scenario's runs. */
export interface Summary {
  readonly wallMs: number;
  readonly cpuMs: number | null;
  /** CPU of the PostgreSQL and S3 servers meanwhile (null in reports from before it was measured). */
  readonly serverCpuMs?: number | null;
  /** The command's CPU and the servers': all the work a run put on the machine's cores. */
  readonly allCpuMs?: number | null;
  readonly pgbakMaxRssKiB: number | null;
  readonly treeMaxRssKiB: number | null;
  readonly outputBytes: number;
}

export interface ScenarioReport {
  readonly title: string;
  readonly command: string;
  readonly runs: readonly RunResult[];
  readonly median: Summary;
}

export interface Target {
  readonly name: string;
  readonly value: number | null;
  readonly limit: number;
  readonly met: boolean | null;
}

/** The JSON file one bench run writes (bench/results/<date>-<host>.json). */
export interface BenchReport {
  readonly format: 'pgbak-bench';
  readonly version: 1;
  readonly date: string;
  readonly host: string;
  readonly machine: Readonly<Record<string, string | number>>;
  readonly versions: Readonly<Record<string, string>>;
  readonly dataset: Dataset & { readonly dumpZ0Bytes: number };
  readonly options: {
    readonly reps: number;
    readonly zstdLevel: number;
    readonly order: readonly string[];
    readonly pgbakEnv?: Readonly<Record<string, string>>;
  };
  readonly scenarios: Readonly<Record<string, ScenarioReport>>;
  readonly ratios: Readonly<Record<string, number | null>>;
  readonly targets: readonly Target[];
  readonly loadAverage: { readonly start: number; readonly end: number };
  readonly seconds: number;
}

/** The median (mean of the middle two for an even count); null when any value is missing. */
export function median(values: readonly (number | null)[]): number | null {
  if (values.length === 0 || values.some((v) => v === null)) return null;
  const s = [...(values as number[])].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The servers' CPU of one run, summed (null when not measured). */
const serverCpuOf = (r: RunResult) => (r.serverCpuMs ? Object.values(r.serverCpuMs).reduce((a, b) => a + b, 0) : null);

/** Medians of a scenario's runs. */
export function summarize(runs: readonly RunResult[]): Summary {
  return {
    wallMs: median(runs.map((r) => r.wallMs)) ?? 0,
    cpuMs: median(runs.map((r) => r.cpuMs)),
    serverCpuMs: median(runs.map(serverCpuOf)),
    allCpuMs: median(runs.map((r) => (r.cpuMs === null || serverCpuOf(r) === null ? null : r.cpuMs + serverCpuOf(r)!))),
    pgbakMaxRssKiB: median(runs.map((r) => r.pgbakMaxRssKiB)),
    treeMaxRssKiB: median(runs.map((r) => r.treeMaxRssKiB)),
    outputBytes: median(runs.map((r) => r.outputBytes)) ?? 0,
  };
}

const backupRatio = (s: Readonly<Record<string, ScenarioReport>>, id: string) => {
  const x = stepMedian(s, id, 'backup');
  const y = s.zstd_T0?.median.wallMs;
  return x !== null && y ? x / y : null;
};

const ratio = (s: Readonly<Record<string, ScenarioReport>>, a: string, b: string) => {
  const x = s[a]?.median.wallMs;
  const y = s[b]?.median.wallMs;
  return x !== undefined && y ? x / y : null;
};

/**
 * The median of each repetition's ratio a / b (run i of `a` against run i of `b`). A repetition
 * runs every scenario once, one right after the other, so a pair shares the machine's load of
 * that moment; the ratio of the two medians instead pairs runs minutes apart. Null when the
 * scenarios' runs do not pair up.
 */
export function pairedRatio(
  s: Readonly<Record<string, ScenarioReport>>,
  a: string,
  b: string,
  of: (r: RunResult) => number | null | undefined = (r) => r.wallMs,
): number | null {
  const x = s[a]?.runs;
  const y = s[b]?.runs;
  if (!x || !y || x.length === 0 || x.length !== y.length) return null;
  return median(
    x.map((r, i) => {
      const num = of(r);
      const den = y[i]!.wallMs;
      return typeof num === 'number' && den > 0 ? num / den : null;
    }),
  );
}

/** The median of one step's times over a scenario's runs (null when a run lacks it). */
const stepMedian = (s: Readonly<Record<string, ScenarioReport>>, id: string, step: string) =>
  s[id] ? median(s[id].runs.map((r) => r.steps?.[step] ?? null)) : null;

/** Issue 7's ratios and targets from the medians. */
export function judge(s: Readonly<Record<string, ScenarioReport>>): { ratios: Record<string, number | null>; targets: Target[] } {
  const ratios = {
    'd/b': ratio(s, 'd', 'b'),
    'd/c': ratio(s, 'd', 'c'),
    'e/a': ratio(s, 'e', 'a'),
    'f_pgbak/f_bare': ratio(s, 'f_pgbak', 'f_bare'),
    'zstd_T0/zstd_T1': ratio(s, 'zstd_T0', 'zstd_T1'),
    'e_local/zstd_T0': ratio(s, 'e_local', 'zstd_T0'),
    'e/zstd_T0': ratio(s, 'e', 'zstd_T0'),
    'e_counts/e_local': ratio(s, 'e_counts', 'e_local'),
    // The backup's own time (its durationMs: no node start-up, no retention or report after it).
    'e_local:backup/zstd_T0': backupRatio(s, 'e_local'),
    'e:backup/zstd_T0': backupRatio(s, 'e'),
  };
  const t = (name: string, value: number | null, limit: number): Target => ({
    name,
    value,
    limit,
    met: value === null ? null : value <= limit,
  });
  const sizeE = s.e?.median.outputBytes;
  const sizeB = s.b?.median.outputBytes;
  const rss = [s.d?.median.pgbakMaxRssKiB, s.e?.median.pgbakMaxRssKiB, s.f_pgbak?.median.pgbakMaxRssKiB].filter(
    (v): v is number => typeof v === 'number',
  );
  const targets = [
    t('(d) ≤ 1.05 × (b)', ratios['d/b'], 1.05),
    t('(d) ≤ 0.85 × (c)', ratios['d/c'], 0.85),
    t('(e) ≤ 1.4 × (a)', ratios['e/a'], 1.4),
    t("(e)'s output ≤ (b)'s (ratio)", sizeE !== undefined && sizeB ? sizeE / sizeB : null, 1),
    t('pgbak restore ≤ 1.1 × bare pg_restore', ratios['f_pgbak/f_bare'], 1.1),
    t('peak RSS of pgbak ≤ 120 MB (MB)', rss.length ? Math.max(...rss) / 1024 : null, 120),
    t('peak RSS of pgbak ≤ 80 MB (MB, issue 16)', rss.length ? Math.max(...rss) / 1024 : null, 80),
    t('(e_local) ≤ 1.15 × bare pg_dump | zstd -T0', ratios['e_local/zstd_T0'], 1.15),
    t('(e) ≤ 1.3 × bare pg_dump | zstd -T0', ratios['e/zstd_T0'], 1.3),
  ];
  const wal = walTargets(s);
  return { ratios: { ...ratios, ...wal.ratios }, targets: [...targets, ...wal.targets] };
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(bytes < 10e6 ? 2 : 0);
const sec = (ms: number | null) => (ms === null ? '–' : (ms / 1000).toFixed(2));
const rssMb = (kib: number | null) => (kib === null ? '–' : (kib / 1024).toFixed(0));
const cell = (text: string) => text.replaceAll('|', '\\|');

/** The markdown tables of one report: machine, dataset, scenarios, ratios and targets. */
export function renderResults(r: BenchReport): string {
  const lines: string[] = [];
  const m = r.machine;
  lines.push(
    `Run of ${r.date.slice(0, 16).replace('T', ' ')} UTC on \`${r.host}\`: ${m.cpuModel}, ${m.cpus} cores, ${m.memoryGiB} GiB, ${m.kernel}.`,
  );
  const extra = Object.entries(r.options.pgbakEnv ?? {}).map(([k, v]) => `${k}=${v}`);
  if (extra.length) lines.push(`pgbak ran with ${extra.join(' ')}.`);
  lines.push(
    `Versions: ${Object.entries(r.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
  );
  const rows = Object.entries(r.dataset.rows)
    .map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`)
    .join(', ');
  lines.push(
    `Dataset: ${mb(r.dataset.bytes)} MB on disk (target ${mb(r.dataset.targetBytes)} MB; ${rows}); uncompressed custom dump ${mb(r.dataset.dumpZ0Bytes)} MB.`,
  );
  const loads = Object.values(r.scenarios).flatMap((s) => s.runs.map((x) => x.load1));
  lines.push(
    `${r.options.reps} repetitions, interleaved; medians. 1-minute load average when runs started: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} ` +
      `(${m.cpus} cores; the bench itself keeps one or two busy, more is other work on the machine). Whole run ${Math.round(r.seconds)} s.`,
  );
  lines.push('');
  lines.push("| | scenario | wall s | CPU s | servers' CPU s | peak RSS pgbak MB | largest process MB | output MB | runs (wall s) |");
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---|');
  for (const [id, s] of Object.entries(r.scenarios)) {
    if (id.startsWith('wal_')) continue; // their own section (bench:wal)
    const steps = s.runs[0]?.steps
      ? ` — ${Object.keys(s.runs[0].steps)
          .map((k) => `${k} ${sec(median(s.runs.map((x) => x.steps?.[k] ?? null)))}`)
          .join(', ')}`
      : '';
    const out = id === 'a' ? r.dataset.dumpZ0Bytes : s.median.outputBytes;
    lines.push(
      `| ${id} | ${cell(s.title)}${steps} | ${sec(s.median.wallMs)} | ${sec(s.median.cpuMs)} | ${sec(s.median.serverCpuMs ?? null)} | ${rssMb(s.median.pgbakMaxRssKiB)} | ${rssMb(s.median.treeMaxRssKiB)} | ${mb(out)} | ${s.runs.map((x) => sec(x.wallMs)).join(' ')} |`,
    );
  }
  lines.push('');
  lines.push(
    "| ratio or target (wall time medians) | value | median of each repetition's ratio | same ratio of CPU time | of all CPU, servers included | limit | met |",
  );
  lines.push('|---|---:|---:|---:|---:|---:|---|');
  const paired = (pair: string | undefined, of?: (x: RunResult) => number | null | undefined) => {
    if (!pair) return '';
    const [a, b] = pair.split('/') as [string, string];
    const v = pairedRatio(r.scenarios, a, b, of);
    return v === null ? '–' : v.toFixed(2);
  };
  const cpuRatio = (pair: string | undefined, of: (m: Summary) => number | null | undefined) => {
    if (!pair) return '';
    const [x, y] = pair.split('/').map((id) => (r.scenarios[id!] ? of(r.scenarios[id!]!.median) : undefined));
    return typeof x === 'number' && typeof y === 'number' && y > 0 ? (x / y).toFixed(2) : '–';
  };
  const cpu = (pair: string | undefined) => `${cpuRatio(pair, (m) => m.cpuMs)} | ${cpuRatio(pair, (m) => m.allCpuMs)}`;
  const pairOf: Record<string, string> = {
    '(d) ≤ 1.05 × (b)': 'd/b',
    '(d) ≤ 0.85 × (c)': 'd/c',
    '(e) ≤ 1.4 × (a)': 'e/a',
    'pgbak restore ≤ 1.1 × bare pg_restore': 'f_pgbak/f_bare',
    '(e_local) ≤ 1.15 × bare pg_dump | zstd -T0': 'e_local/zstd_T0',
    '(e) ≤ 1.3 × bare pg_dump | zstd -T0': 'e/zstd_T0',
  };
  for (const t of r.targets) {
    if (!(t.name in pairOf) && !DUMP_TARGETS.has(t.name)) continue;
    lines.push(
      `| ${cell(t.name)} | ${t.value === null ? '–' : t.value.toFixed(2)} | ${paired(pairOf[t.name])} | ${t.name in pairOf ? cpu(pairOf[t.name]) : ' | '} | ${t.limit} | ${t.met === null ? '–' : t.met ? 'yes' : '**no**'} |`,
    );
  }
  // The backup's own time against the bare pipe: the stream path without node's start-up before
  // it and the retention and report after it (issue 16 measured its 12.6 s "plus ~1 s start-up").
  for (const id of ['e_local', 'e']) {
    const v = r.ratios[`${id}:backup/zstd_T0`];
    if (v === null || v === undefined) continue;
    lines.push(
      `| (${id})'s backup alone (pgbak's durationMs) / bare pg_dump \\| zstd -T0 | ${v.toFixed(2)} | ${paired(`${id}/zstd_T0`, (x) => x.steps?.backup)} | | | | |`,
    );
  }
  const z = r.ratios['zstd_T0/zstd_T1'];
  if (z !== null && z !== undefined)
    lines.push(
      `| zstd -T0 / single-threaded (bare pipe) | ${z.toFixed(2)} | ${paired('zstd_T0/zstd_T1')} | ${cpu('zstd_T0/zstd_T1')} | | |`,
    );
  const rc = r.ratios['e_counts/e_local'];
  if (rc !== null && rc !== undefined)
    lines.push(
      `| exact row counts: (e_counts) / (e_local) | ${rc.toFixed(2)} | ${paired('e_counts/e_local')} | ${cpu('e_counts/e_local')} | | |`,
    );
  // How full the cores were: where the bare pipe already keeps them busy, every CPU second a
  // command adds (its own, the servers') shows in its wall time.
  const busy = ['zstd_T0', 'e_local', 'e', 'd']
    .map((id) => {
      const m = r.scenarios[id]?.median;
      return m && typeof m.allCpuMs === 'number' && m.wallMs > 0 ? `${id} ${(m.allCpuMs / m.wallMs).toFixed(2)}` : undefined;
    })
    .filter((x) => x !== undefined);
  if (busy.length)
    lines.push(
      '',
      `Cores kept busy (all CPU, the servers' included, / wall; medians): ${busy.join(', ')}, of ${m.cpus}. "servers' CPU" is what the PostgreSQL server (its backends) and MinIO spent during the run; GNU time's "CPU s" covers only the command and its children.`,
    );
  return lines.join('\n');
}

const DUMP_TARGETS = new Set([
  "(e)'s output ≤ (b)'s (ratio)",
  'peak RSS of pgbak ≤ 120 MB (MB)',
  'peak RSS of pgbak ≤ 80 MB (MB, issue 16)',
]);

/** Peak RSS of pgbak per dataset size, from every report in the results directory. */
export function renderMemory(resultsDir: string): string {
  const reports = existsSync(resultsDir)
    ? readdirSync(resultsDir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')) as BenchReport)
        .filter((r) => r.format === 'pgbak-bench' && ['d', 'e', 'f_pgbak'].some((id) => r.scenarios[id]))
    : [];
  const lines = [
    '| run | dataset MB | dump -Z0 MB | (d) peak RSS MB | (e) peak RSS MB | restore peak RSS MB |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of reports.sort((a, b) => a.dataset.bytes - b.dataset.bytes || a.date.localeCompare(b.date))) {
    const p = (id: string) => rssMb(r.scenarios[id]?.median.pgbakMaxRssKiB ?? null);
    const extra = Object.entries(r.options.pgbakEnv ?? {})
      .map(([k, v]) => ` ${k}=${v}`)
      .join('');
    lines.push(
      `| ${r.date.slice(0, 16).replace('T', ' ')} ${r.host}${extra} | ${mb(r.dataset.bytes)} | ${mb(r.dataset.dumpZ0Bytes)} | ${p('d')} | ${p('e')} | ${p('f_pgbak')} |`,
    );
  }
  return lines.join('\n');
}

/** Replace the text between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->` (appended when absent). */
export function replaceSection(doc: string, name: string, body: string): string {
  const begin = `<!-- bench:${name}:begin -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${begin}\n${body}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) return doc.slice(0, i) + block + doc.slice(j + end.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}

/** Regenerate the generated sections of docs/performance.md, keeping the written analysis around them. */
export function updateDocs(file: string, report: BenchReport, resultsDir: string, full: boolean): void {
  let doc = existsSync(file) ? readFileSync(file, 'utf8') : '# Performance\n\nGenerated by `npm run bench`.\n';
  if (full) doc = replaceSection(doc, 'results', renderResults(report));
  if (Object.keys(report.scenarios).some((id) => id.startsWith('wal_'))) doc = replaceSection(doc, 'wal', renderWal(report));
  doc = replaceSection(doc, 'memory', renderMemory(resultsDir));
  writeFileSync(file, doc);
}
