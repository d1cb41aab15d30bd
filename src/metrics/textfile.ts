import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError, errnoCode, fsError } from '../errors/index.js';
import { BackupMetrics, METRIC_NAMES, type GaugeKey, type MetricsSeed, type WalMetricsState } from './metrics.js';

/**
 * node_exporter's textfile collector (`--collector.textfile.directory`) reads every `*.prom`
 * file of its directory at each scrape. A file written in place could be read half-written, so
 * pgbak writes a temp file (not ending in `.prom`, so never collected) in the same directory and
 * renames it over the target: rename within one file system is atomic.
 *
 * State between CLI runs: each `pgbak backup` is a new process, but the textfile must still carry
 * the last *success* after a failed run, and the series of other jobs sharing the file. The
 * textfile itself is that state: {@link updateMetricsTextfile} reads the current file, seeds the
 * gauges with every series in it, applies the run and writes the whole file back. Two processes
 * updating one file at the same instant can lose one update (the next run repairs it); give
 * concurrently scheduled jobs distinct METRICS_TEXTFILE paths if that matters.
 */

/** Write `text` to `path` atomically (temp file in the same directory + rename, mode 0644). */
export async function writeMetricsTextfile(path: string, text: string): Promise<void> {
  if (!path.endsWith('.prom')) {
    throw new ConfigError([
      `METRICS_TEXTFILE: must end with .prom, node_exporter's textfile collector reads only *.prom files (got ${path})`,
    ]);
  }
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(text.endsWith('\n') || text === '' ? text : text + '\n');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw fsError(
      err,
      'write metrics file',
      path,
      "set METRICS_TEXTFILE to a *.prom file in node_exporter's textfile directory, writable by pgbak",
    );
  }
}

const GAUGE_BY_NAME = new Map<string, GaugeKey>(
  (Object.entries(METRIC_NAMES) as [keyof typeof METRIC_NAMES, string][])
    .filter((e): e is [GaugeKey, string] => e[0] !== 'runsTotal' && e[0] !== 'walArchiveFailures')
    .map(([key, name]) => [name, key]),
);

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/y;

function parseLabels(text: string): Record<string, string> | undefined {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  let m: RegExpExecArray | null;
  while (LABEL.lastIndex < text.length && (m = LABEL.exec(text)) !== null) {
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
  }
  return LABEL.lastIndex === text.length || text.trim() === '' ? labels : undefined;
}

/**
 * Read pgbak's gauges back from text in the exposition format: one seed per job/database.
 * Lines that are not pgbak gauges (comments, other metrics, the run counter) are ignored.
 */
export function parseMetricsText(text: string): MetricsSeed[] {
  const seeds = new Map<string, { job: string; database: string } & Record<string, unknown>>();
  // The WAL series are set together (recordWal): a seed gets them when its WAL_RPO series is there.
  const wal = new Map<
    string,
    Partial<Record<'walLastArchived' | 'walRpo' | 'walLastFailure' | 'basebackupLastSuccess' | 'failures', number>>
  >();
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line.trim());
    if (!m) continue;
    const key = m[1] === METRIC_NAMES.walArchiveFailures ? 'failures' : GAUGE_BY_NAME.get(m[1]!);
    const labels = parseLabels(m[2] ?? '');
    const value = Number(m[3]);
    if (!key || !labels || labels.job === undefined || labels.database === undefined || !Number.isFinite(value)) continue;
    const id = `${labels.job}\u0000${labels.database}`;
    const seed = seeds.get(id) ?? { job: labels.job, database: labels.database };
    seeds.set(id, seed);
    switch (key) {
      case 'failures':
      case 'walLastArchived':
      case 'walRpo':
      case 'walLastFailure':
      case 'basebackupLastSuccess':
        wal.set(id, { ...wal.get(id), [key]: value });
        break;
      case 'lastSuccess':
        seed.lastSuccessAt = new Date(value * 1000);
        break;
      case 'lastRun':
        seed.lastRunAt = new Date(value * 1000);
        break;
      case 'lastStatus':
        seed.lastStatus = value === 1 ? 'ok' : 'failed';
        break;
      case 'lastDuration':
        seed.lastDurationMs = value * 1000;
        break;
      case 'lastSize':
        seed.lastSizeBytes = value;
        break;
      case 'sizeAnomaly':
        seed.sizeAnomaly = value === 1;
        break;
      case 'restoreTestLastSuccess':
        seed.restoreTestLastSuccessAt = new Date(value * 1000);
        break;
      case 'restoreTestLastDuration':
        seed.restoreTestLastDurationMs = value * 1000;
        break;
      default:
        key satisfies never;
    }
  }
  const at = (v: number | undefined) => (v ? new Date(v * 1000) : null);
  for (const [id, w] of wal) {
    if (w.walRpo === undefined) continue;
    seeds.get(id)!.wal = {
      lastArchivedAt: at(w.walLastArchived),
      rpoMs: w.walRpo * 1000,
      failures: w.failures ?? 0,
      lastFailureAt: at(w.walLastFailure),
      basebackupLastSuccessAt: at(w.basebackupLastSuccess),
    } satisfies WalMetricsState;
  }
  return [...seeds.values()] as MetricsSeed[];
}

/** The seeds stored in an existing textfile; an absent file gives none. */
export async function readMetricsTextfile(path: string): Promise<MetricsSeed[]> {
  try {
    return parseMetricsText(await readFile(path, 'utf8'));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw fsError(err, 'read metrics file', path);
  }
}

/**
 * What a CLI run calls after a backup or restore test: read the existing textfile, seed fresh
 * metrics with it, let `update` record the run, write the file back atomically. Throws an
 * AppError on a file-system problem; the caller logs it as a warning (metrics never fail a run).
 */
export async function updateMetricsTextfile(path: string, update: (metrics: BackupMetrics) => void): Promise<void> {
  const metrics = new BackupMetrics();
  metrics.setFromState(await readMetricsTextfile(path));
  update(metrics);
  await writeMetricsTextfile(path, await metrics.text());
}
