import type { BenchReport, ScenarioReport, Target } from './report.js';
import { median } from './report.js';

/** The median of one step (a figure a WAL scenario reports) over its runs; null when absent. */
export function stepMedian(s: ScenarioReport | undefined, key: string): number | null {
  if (!s) return null;
  return median(s.runs.map((r) => r.steps?.[key] ?? null));
}

const ratioOf = (a: number | null, b: number | null) => (a !== null && b ? a / b : null);

const SAME_BACKUP = 'pgbak basebackup ≤ 1.0 × pgBackRest backup, same work (zstd 3, local directory, no encryption)';
const SAME_RESTORE = 'pgbak restore-to-running ≤ 1.5 × pgBackRest, same work';

/** Issue 11's targets, from the WAL scenarios present in the run. */
export function walTargets(s: Readonly<Record<string, ScenarioReport>>): { ratios: Record<string, number | null>; targets: Target[] } {
  const t = (name: string, value: number | null, limit: number, atLeast = false): Target => ({
    name,
    value,
    limit,
    met: value === null ? null : atLeast ? value >= limit : value <= limit,
  });
  const ratios: Record<string, number | null> = {};
  const targets: Target[] = [];
  if (s.wal_push)
    targets.push(t('wal-push as archive_command: segments/s (at least)', stepMedian(s.wal_push, 'segmentsPerSecond'), 4, true));
  if (s.wal_pgbench)
    targets.push(t('pgbench -c 4 -T 60: seconds to drain .ready after the load', stepMedian(s.wal_pgbench, 'drainSeconds'), 30));
  if (s.wal_base_pgbak && s.wal_base_pgbackrest) {
    ratios['basebackup pgbak/pgbackrest'] = ratioOf(stepMedian(s.wal_base_pgbak, 'backup'), stepMedian(s.wal_base_pgbackrest, 'backup'));
    ratios['restore-to-running pgbak/pgbackrest'] = ratioOf(
      stepMedian(s.wal_base_pgbak, 'restoreToRunning'),
      stepMedian(s.wal_base_pgbackrest, 'restoreToRunning'),
    );
    targets.push(t('pgbak basebackup ≤ 1.0 × pgBackRest backup', ratios['basebackup pgbak/pgbackrest']!, 1));
    targets.push(t('pgbak restore-to-running ≤ 1.5 × pgBackRest', ratios['restore-to-running pgbak/pgbackrest']!, 1.5));
  }
  // The same work as the pgBackRest configuration beside it (zstd 3 into a local directory, no encryption, no bucket).
  if (s.wal_base_pgbak_same_work && s.wal_base_pgbackrest) {
    ratios['basebackup pgbak same work/pgbackrest'] = ratioOf(
      stepMedian(s.wal_base_pgbak_same_work, 'backup'),
      stepMedian(s.wal_base_pgbackrest, 'backup'),
    );
    ratios['restore-to-running pgbak same work/pgbackrest'] = ratioOf(
      stepMedian(s.wal_base_pgbak_same_work, 'restoreToRunning'),
      stepMedian(s.wal_base_pgbackrest, 'restoreToRunning'),
    );
    targets.push(t(SAME_BACKUP, ratios['basebackup pgbak same work/pgbackrest']!, 1));
    targets.push(t(SAME_RESTORE, ratios['restore-to-running pgbak same work/pgbackrest']!, 1.5));
  }
  return { ratios, targets };
}

const f = (v: number | null, digits = 1) => (v === null ? '–' : v.toFixed(digits));
const sec = (ms: number | null) => (ms === null ? '–' : (ms / 1000).toFixed(1));

/** The markdown of the WAL scenarios of one report. */
export function renderWal(r: BenchReport): string {
  const s = r.scenarios;
  const loads = Object.entries(s)
    .filter(([id]) => id.startsWith('wal_'))
    .flatMap(([, x]) => x.runs.map((run) => run.load1));
  const lines = [
    `Run of ${r.date.slice(0, 16).replace('T', ' ')} UTC on \`${r.host}\` (${r.machine.cpus} cores), dataset ${(r.dataset.bytes / 1e6).toFixed(0)} MB, ` +
      `${r.options.reps} repetitions, medians; 1-minute load average when runs started: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}.`,
    '',
  ];
  if (s.wal_push || s.wal_push_node || s.wal_serial) {
    lines.push(
      '| scenario | segments/s | median call ms | p90 call ms | calls that pushed: median ms | calls answered ahead: median ms | CPU ms per segment: all (calls + worker + S3) |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|');
    for (const id of ['wal_push', 'wal_push_node']) {
      if (!s[id]) continue;
      const m = (k: string) => stepMedian(s[id], k);
      const how = id === 'wal_push' ? 'pgbak-wal-push (sh client)' : 'pgbak wal-push (node every call)';
      lines.push(
        `| ${id}: ${f(m('segments'), 0)} .ready segments drained by the archiver through ${how} | ${f(m('segmentsPerSecond'))} | ${f(m('medianCallMs'), 0)} | ${f(m('p90CallMs'), 0)} | ${f(m('pushingCalls'), 0)} calls: ${f(m('medianPushingCallMs'), 0)} | ${f(m('answeredAheadCalls'), 0)} calls: ${f(m('medianAheadCallMs'), 0)} | ${cpuCell(m)} |`,
      );
    }
    if (s.wal_serial) {
      const m = (k: string) => stepMedian(s.wal_serial, k);
      lines.push(
        `| wal_serial: ${f(m('segments'), 0)} full pushes in a row, no push-ahead | ${f(m('segmentsPerSecond'))} | ${f(m('medianCallMs'), 0)} | – | all | – | ${f(m('cpuPerCallMs'), 0)} |`,
      );
    }
    lines.push('');
  }
  if (s.wal_pgbench) {
    const m = (k: string) => stepMedian(s.wal_pgbench, k);
    lines.push(
      '| pgbench -c 4 -T 60 | WAL segments written | segments/s | tps | max .ready | .ready at the end | seconds to drain | archive failures | CPU ms per segment: all (calls + worker + S3) |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    lines.push(
      `| wal_pgbench | ${f(m('walSegments'), 0)} | ${f(m('walSegmentsPerSecond'))} | ${f(m('tps'), 0)} | ${f(m('maxReady'), 0)} | ${f(m('readyAtEnd'), 0)} | ${f(m('drainSeconds'))} | ${f(m('failed'), 0)} | ${cpuCell(m)} |`,
    );
    lines.push('');
  }
  if (s.wal_base_pgbak || s.wal_base_pgbackrest) {
    lines.push(
      '| tool | backup s | backup CPU s | restore s | start until promoted s | restore-to-running s | restore CPU s | stored MB | runs: backup / restore-to-running s |',
    );
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const id of ['wal_base_pgbackrest', 'wal_base_pgbak', 'wal_base_pgbak_same_work']) {
      const x = s[id];
      if (!x) continue;
      const m = (k: string) => stepMedian(x, k);
      const runs = x.runs.map((run) => `${sec(run.steps?.backup ?? null)} / ${sec(run.steps?.restoreToRunning ?? null)}`).join(', ');
      lines.push(
        `| ${{ wal_base_pgbak: 'pgbak (zstd + gpg + local + MinIO)', wal_base_pgbak_same_work: 'pgbak, same work as pgBackRest (zstd, local, no gpg)' }[id] ?? 'pgBackRest (zstd, posix repo)'} | ${sec(m('backup'))} | ${sec(m('backupCpu'))} | ${sec(m('restore'))} | ${sec(m('start'))} | ${sec(m('restoreToRunning'))} | ${sec(m('restoreCpu'))} | ${(x.median.outputBytes / 1e6).toFixed(0)} | ${runs} |`,
      );
    }
    lines.push('');
  }
  const wt = r.targets.filter((t) => walTargetNames.has(t.name));
  if (wt.length) {
    lines.push('| target | value | limit | met |');
    lines.push('|---|---:|---:|---|');
    for (const t of wt) lines.push(`| ${t.name} | ${f(t.value, 2)} | ${t.limit} | ${t.met === null ? '–' : t.met ? 'yes' : '**no**'} |`);
  }
  return lines.join('\n');
}

const walTargetNames = new Set([
  'wal-push as archive_command: segments/s (at least)',
  'pgbench -c 4 -T 60: seconds to drain .ready after the load',
  'pgbak basebackup ≤ 1.0 × pgBackRest backup',
  'pgbak restore-to-running ≤ 1.5 × pgBackRest',
  SAME_BACKUP,
  SAME_RESTORE,
]);

/** CPU per archived segment (wal-scenarios.ts cpuPerSegment), all and its parts; – for runs without it. */
function cpuCell(m: (k: string) => number | null | undefined): string {
  const all = m('cpuPerSegmentMs');
  if (all === null || all === undefined || Number.isNaN(all)) return '–';
  const r = (k: string) => Math.round(m(k) ?? 0);
  return `${Math.round(all)} (${r('callsCpuPerSegmentMs')} + ${r('workerCpuPerSegmentMs')} + ${r('s3CpuPerSegmentMs')})`;
}
