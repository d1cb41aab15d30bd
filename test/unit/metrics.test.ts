import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackupResult } from '../../src/model/backup-result.js';
import { ConfigError } from '../../src/errors/index.js';
import { BackupMetrics } from '../../src/metrics/metrics.js';
import { parseMetricsText, readMetricsTextfile, updateMetricsTextfile, writeMetricsTextfile } from '../../src/metrics/textfile.js';

/** An independent reader of the exposition format: `name{a="x",b="y"}` (labels sorted) → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable sample line (or it has a timestamp): ${line}`);
    const labels = (m[2] ?? '').split(',').filter(Boolean).sort().join(',');
    out.set(`${m[1]}{${labels}}`, Number(m[3]));
  }
  return out;
}

const L = 'database="shop",job="shop"';

function run(overrides: Partial<BackupResult> = {}): BackupResult {
  return {
    status: 'ok',
    job: 'shop',
    database: 'shop',
    name: 'shop_20261128_170000',
    startedAt: '2026-11-28T17:00:00.000Z',
    finishedAt: '2026-11-28T17:01:30.000Z',
    durationMs: 90_000,
    sizeBytes: 123_456,
    sha256: 'ab'.repeat(32),
    encrypted: true,
    locations: ['/var/backups/db/shop_20261128_170000.dump'],
    error: undefined,
    warnings: [],
    ...overrides,
  };
}

const OK_AT = Date.parse('2026-11-28T17:01:30.000Z') / 1000;
const FAIL_AT = Date.parse('2026-11-28T23:00:05.000Z') / 1000;
const failed = () =>
  run({
    status: 'failed',
    name: undefined,
    finishedAt: '2026-11-28T23:00:05.000Z',
    durationMs: 5000,
    sizeBytes: undefined,
    locations: [],
    error: { code: 'database', message: 'connection refused', exitCode: 5 },
  });

describe('BackupMetrics', () => {
  it('has the values of a successful run, with HELP/TYPE and no timestamps', async () => {
    const m = new BackupMetrics();
    m.recordRun(run(), { anomaly: false });
    const text = await m.text();
    const s = samples(text);
    expect(s.get(`pgbak_backup_last_success_timestamp_seconds{${L}}`)).toBe(OK_AT);
    expect(s.get(`pgbak_backup_last_run_timestamp_seconds{${L}}`)).toBe(OK_AT);
    expect(s.get(`pgbak_backup_last_status{${L}}`)).toBe(1);
    expect(s.get(`pgbak_backup_last_duration_seconds{${L}}`)).toBe(90);
    expect(s.get(`pgbak_backup_last_size_bytes{${L}}`)).toBe(123_456);
    expect(s.get(`pgbak_backup_size_anomaly{${L}}`)).toBe(0);
    expect(text).toContain('# TYPE pgbak_backup_last_status gauge');
    expect(text).toMatch(/^# HELP pgbak_backup_last_success_timestamp_seconds \S/m);
    // A dedicated registry: nothing but pgbak's metrics, and no run counter outside the daemon.
    expect([...s.keys()].every((k) => k.startsWith('pgbak_'))).toBe(true);
    expect(text).not.toContain('pgbak_backup_runs_total');
  });

  it('keeps the last success after a failed run and sets status 0', async () => {
    const m = new BackupMetrics();
    m.recordRun(run(), { anomaly: false });
    m.recordRun(failed(), { anomaly: false });
    const s = samples(await m.text());
    expect(s.get(`pgbak_backup_last_success_timestamp_seconds{${L}}`)).toBe(OK_AT);
    expect(s.get(`pgbak_backup_last_run_timestamp_seconds{${L}}`)).toBe(FAIL_AT);
    expect(s.get(`pgbak_backup_last_status{${L}}`)).toBe(0);
    expect(s.get(`pgbak_backup_last_duration_seconds{${L}}`)).toBe(5);
    expect(s.get(`pgbak_backup_last_size_bytes{${L}}`)).toBe(123_456);
  });

  it('sets last success to 0 when a database has never had a good backup', async () => {
    const m = new BackupMetrics();
    m.recordRun(failed(), { anomaly: false });
    const s = samples(await m.text());
    expect(s.get(`pgbak_backup_last_success_timestamp_seconds{${L}}`)).toBe(0);
    expect(s.get(`pgbak_backup_last_status{${L}}`)).toBe(0);
    expect(s.has(`pgbak_backup_last_size_bytes{${L}}`)).toBe(false);
  });

  it('counts a partial run as not ok, records its size and the anomaly flag', async () => {
    const m = new BackupMetrics();
    m.recordRun(run({ status: 'partial', sizeBytes: 10 }), { anomaly: true });
    const s = samples(await m.text());
    expect(s.get(`pgbak_backup_last_status{${L}}`)).toBe(0);
    expect(s.get(`pgbak_backup_last_success_timestamp_seconds{${L}}`)).toBe(0);
    expect(s.get(`pgbak_backup_last_size_bytes{${L}}`)).toBe(10);
    expect(s.get(`pgbak_backup_size_anomaly{${L}}`)).toBe(1);
  });

  it('ignores dry runs', async () => {
    const m = new BackupMetrics({ countRuns: true });
    m.recordRun(run({ status: 'dry-run' }), { anomaly: false });
    expect(samples(await m.text()).size).toBe(0);
  });

  it('counts runs by status in daemon mode', async () => {
    const m = new BackupMetrics({ countRuns: true });
    m.recordRun(run(), { anomaly: false });
    m.recordRun(run(), { anomaly: false });
    m.recordRun(failed(), { anomaly: false });
    const s = samples(await m.text());
    expect(s.get(`pgbak_backup_runs_total{${L},status="ok"}`)).toBe(2);
    expect(s.get(`pgbak_backup_runs_total{${L},status="failed"}`)).toBe(1);
  });

  it('records restore tests; a failed one keeps the last success', async () => {
    const m = new BackupMetrics();
    m.recordRestoreTest({ job: 'shop', database: 'shop', ok: true, durationMs: 42_500, at: '2026-11-28T18:00:00Z' });
    m.recordRestoreTest({ job: 'shop', database: 'shop', ok: false, durationMs: 1000, at: '2026-11-29T18:00:00Z' });
    const s = samples(await m.text());
    expect(s.get(`pgbak_restore_test_last_success_timestamp_seconds{${L}}`)).toBe(Date.parse('2026-11-28T18:00:00Z') / 1000);
    expect(s.get(`pgbak_restore_test_last_duration_seconds{${L}}`)).toBe(1);
  });

  it('seeds gauges from state, then a failed run keeps the seeded success', async () => {
    const m = new BackupMetrics();
    m.setFromState([{ job: 'shop', database: 'shop', lastSuccessAt: '2026-11-27T05:00:00Z', lastSizeBytes: 99, lastStatus: 'ok' }]);
    m.recordRun(failed(), { anomaly: false });
    const s = samples(await m.text());
    expect(s.get(`pgbak_backup_last_success_timestamp_seconds{${L}}`)).toBe(Date.parse('2026-11-27T05:00:00Z') / 1000);
    expect(s.get(`pgbak_backup_last_size_bytes{${L}}`)).toBe(99);
    expect(s.get(`pgbak_backup_last_status{${L}}`)).toBe(0);
  });

  it('declareJobs: a job that never ran has last success and last run 0 (never) and zero run counts; known values are kept', async () => {
    const m = new BackupMetrics({ countRuns: true });
    m.setFromState([{ job: 'shop', database: 'shop', lastSuccessAt: '2026-11-27T05:00:00Z', lastRunAt: '2026-11-27T05:00:00Z' }]);
    m.declareJobs([
      { job: 'shop', database: 'shop' },
      { job: 'crm', database: 'crm' },
    ]);
    const s = samples(await m.text());
    const C = 'database="crm",job="crm"';
    expect(s.get(`pgbak_backup_last_success_timestamp_seconds{${C}}`)).toBe(0);
    expect(s.get(`pgbak_backup_last_run_timestamp_seconds{${C}}`)).toBe(0);
    for (const status of ['ok', 'partial', 'failed']) expect(s.get(`pgbak_backup_runs_total{${C},status="${status}"}`)).toBe(0);
    // Not "failed", not "restore test too old": those stay absent until known.
    expect(s.has(`pgbak_backup_last_status{${C}}`)).toBe(false);
    expect(s.has(`pgbak_restore_test_last_success_timestamp_seconds{${C}}`)).toBe(false);
    expect(s.get(`pgbak_backup_last_success_timestamp_seconds{${L}}`)).toBe(Date.parse('2026-11-27T05:00:00Z') / 1000);
    expect(s.get(`pgbak_backup_last_run_timestamp_seconds{${L}}`)).toBe(Date.parse('2026-11-27T05:00:00Z') / 1000);
    // The first run then counts from 0.
    m.recordRun(run({ job: 'crm', database: 'crm' }), { anomaly: false });
    const after = samples(await m.text());
    expect(after.get(`pgbak_backup_last_success_timestamp_seconds{${C}}`)).toBe(OK_AT);
    expect(after.get(`pgbak_backup_runs_total{${C},status="ok"}`)).toBe(1);
  });

  it('reads its own text back, including escaped label values', async () => {
    const m = new BackupMetrics();
    const odd = 'we"ird\\job\nname';
    m.recordRun(run({ job: odd, database: 'shop' }), { anomaly: true });
    m.recordRestoreTest({ job: odd, database: 'shop', ok: true, durationMs: 2000, at: new Date(5_000_000) });
    const seeds = parseMetricsText(await m.text());
    expect(seeds).toEqual([
      {
        job: odd,
        database: 'shop',
        lastSuccessAt: new Date(OK_AT * 1000),
        lastRunAt: new Date(OK_AT * 1000),
        lastStatus: 'ok',
        lastDurationMs: 90_000,
        lastSizeBytes: 123_456,
        sizeAnomaly: true,
        restoreTestLastSuccessAt: new Date(5_000_000),
        restoreTestLastDurationMs: 2000,
      },
    ]);
  });
});

describe('WAL series', () => {
  const wal = {
    lastArchivedAt: '2026-11-28T17:00:00.000Z',
    rpoMs: 300_000,
    failures: 3,
    lastFailureAt: '2026-11-28T16:59:00.000Z',
    basebackupLastSuccessAt: '2026-11-28T02:00:00.000Z',
  };
  const at = (iso: string) => Date.parse(iso) / 1000;

  it('recordWal: last archived, WAL_RPO, the failure counter and last failure, the newest base backup; 0 for none', async () => {
    const m = new BackupMetrics();
    m.recordWal({ job: 'shop', database: 'shop' }, wal);
    m.recordWal(
      { job: 'crm', database: 'crm' },
      { ...wal, lastArchivedAt: null, failures: 0, lastFailureAt: null, basebackupLastSuccessAt: null },
    );
    const text = await m.text();
    expect(text).toContain('# TYPE pgbak_wal_archive_failures_total counter');
    const s = samples(text);
    expect(s.get(`pgbak_wal_last_archived_timestamp_seconds{${L}}`)).toBe(at(wal.lastArchivedAt));
    expect(s.get(`pgbak_wal_rpo_seconds{${L}}`)).toBe(300);
    expect(s.get(`pgbak_wal_archive_failures_total{${L}}`)).toBe(3);
    expect(s.get(`pgbak_wal_archive_last_failure_timestamp_seconds{${L}}`)).toBe(at(wal.lastFailureAt));
    expect(s.get(`pgbak_basebackup_last_success_timestamp_seconds{${L}}`)).toBe(at(wal.basebackupLastSuccessAt));
    expect(s.get('pgbak_wal_last_archived_timestamp_seconds{database="crm",job="crm"}')).toBe(0);
    expect(s.get('pgbak_wal_archive_failures_total{database="crm",job="crm"}')).toBe(0);
    // The counter follows the recorded count: up by the difference, and restarts when the record went away.
    m.recordWal({ job: 'shop', database: 'shop' }, { ...wal, failures: 5 });
    expect(samples(await m.text()).get(`pgbak_wal_archive_failures_total{${L}}`)).toBe(5);
    m.recordWal({ job: 'shop', database: 'shop' }, { ...wal, failures: 1 });
    expect(samples(await m.text()).get(`pgbak_wal_archive_failures_total{${L}}`)).toBe(1);
  });

  it('survives the textfile round trip beside the dump series', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgbak-metrics-wal-'));
    try {
      const path = join(dir, 'pgbak.prom');
      await updateMetricsTextfile(path, (m) => m.recordWal({ job: 'shop', database: 'shop' }, wal));
      await updateMetricsTextfile(path, (m) => m.recordRun(run(), { anomaly: false }));
      const s = samples(readFileSync(path, 'utf8'));
      expect(s.get(`pgbak_wal_archive_failures_total{${L}}`)).toBe(3);
      expect(s.get(`pgbak_wal_rpo_seconds{${L}}`)).toBe(300);
      expect(s.get(`pgbak_wal_last_archived_timestamp_seconds{${L}}`)).toBe(at(wal.lastArchivedAt));
      expect(s.get(`pgbak_backup_last_success_timestamp_seconds{${L}}`)).toBe(OK_AT);
      expect(parseMetricsText(readFileSync(path, 'utf8'))[0]!.wal).toEqual({
        lastArchivedAt: new Date(wal.lastArchivedAt),
        rpoMs: 300_000,
        failures: 3,
        lastFailureAt: new Date(wal.lastFailureAt),
        basebackupLastSuccessAt: new Date(wal.basebackupLastSuccessAt),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metrics textfile', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgbak-metrics-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the file by rename (new inode), leaves no temp file, content complete', async () => {
    const path = join(dir, 'pgbak.prom');
    writeFileSync(path, 'old content\n');
    const before = statSync(path).ino;
    const m = new BackupMetrics();
    m.recordRun(run(), { anomaly: false });
    const text = await m.text();
    await writeMetricsTextfile(path, text);
    expect(readFileSync(path, 'utf8')).toBe(text);
    expect(statSync(path).ino).not.toBe(before);
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['pgbak.prom']);
  });

  it('a concurrent reader only ever sees a complete old or new file', async () => {
    const path = join(dir, 'pgbak.prom');
    const versions = Array.from({ length: 20 }, (_, i) => `# version ${i}\n${`x_${i} ${i}\n`.repeat(20_000)}`);
    await writeMetricsTextfile(path, versions[0]!);
    let reads = 0;
    let writing = true;
    const reader = (async () => {
      while (writing) {
        const seen = readFileSync(path, 'utf8');
        expect(versions).toContain(seen);
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (const v of versions.slice(1)) await writeMetricsTextfile(path, v);
    writing = false;
    await reader;
    expect(reads).toBeGreaterThan(1);
    expect(readFileSync(path, 'utf8')).toBe(versions.at(-1));
  });

  it('refuses a path node_exporter would not read', async () => {
    await expect(writeMetricsTextfile(join(dir, 'pgbak.txt'), 'x 1\n')).rejects.toBeInstanceOf(ConfigError);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('reports a failed write and removes its temp file', async () => {
    const path = join(dir, 'taken.prom');
    mkdirSync(path); // rename onto a directory fails
    await expect(writeMetricsTextfile(path, 'x 1\n')).rejects.toThrow(/cannot write metrics file .*taken\.prom/);
    expect(readdirSync(dir)).toEqual(['taken.prom']);
  });

  it('keeps the last success and other jobs across separate runs (fresh processes)', async () => {
    const path = join(dir, 'sub', 'pgbak.prom');
    expect(await readMetricsTextfile(path)).toEqual([]);
    await updateMetricsTextfile(path, (m) => m.recordRun(run(), { anomaly: false }));
    await updateMetricsTextfile(path, (m) => m.recordRun(run({ job: 'crm', database: 'crm' }), { anomaly: false }));
    await updateMetricsTextfile(path, (m) => m.recordRun(failed(), { anomaly: false }));
    const s = samples(readFileSync(path, 'utf8'));
    expect(s.get(`pgbak_backup_last_success_timestamp_seconds{${L}}`)).toBe(OK_AT);
    expect(s.get(`pgbak_backup_last_status{${L}}`)).toBe(0);
    expect(s.get(`pgbak_backup_last_run_timestamp_seconds{${L}}`)).toBe(FAIL_AT);
    expect(s.get('pgbak_backup_last_status{database="crm",job="crm"}')).toBe(1);
    expect(s.get('pgbak_backup_last_size_bytes{database="crm",job="crm"}')).toBe(123_456);
  });
});
