/**
 * The daemon dashboard with a large catalog: `npx tsx bench/dashboard.ts [--backups 5000] [--runs 50]`.
 * Writes that many fake backups (real keys, manifests, a verification record on every tenth) into
 * a temporary BACKUP_DIR, reads them into the daemon's cache (the cold read, timed once), serves
 * the dashboard on loopback as the daemon does, and times each answer over HTTP from the cache:
 * median, p95 and max of `--runs` requests. The target: under 200 ms per answer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DashboardCache, daemonDashboard } from '../src/api/dashboard-cache.js';
import { loadJobs } from '../src/config/config-file.js';
import { LineLogger } from '../src/logging/logger.js';
import { startMetricsServer } from '../src/metrics/http-server.js';
import { BackupMetrics } from '../src/metrics/metrics.js';
import { LocalBackend } from '../src/storage/local-backend.js';
import { mapLimit, writeFakeBackup } from '../test/helpers/fake-backups.js';

const { values: opts } = parseArgs({ options: { backups: { type: 'string', default: '5000' }, runs: { type: 'string', default: '50' } } });
const count = Number(opts.backups);
const runs = Number(opts.runs);

const dir = mkdtempSync(join(tmpdir(), 'pgbak-bench-dashboard-'));
try {
  const backupDir = join(dir, 'backups');
  const backend = new LocalBackend(backupDir);
  const start = Date.UTC(2026, 0, 1);
  let t0 = performance.now();
  await mapLimit(
    Array.from({ length: count }, (_, i) => i),
    32,
    (i) =>
      writeFakeBackup(backend, {
        prefix: 'shop',
        time: new Date(start + i * 3600_000),
        body: 'x'.repeat(1000 + (i % 97)),
        manifest: i % 50 === 7 ? 'none' : 'ok',
        ...(i % 10 === 3 ? { verification: { ok: true, verifiedAt: new Date(start + i * 3600_000 + 600_000) } } : {}),
      }),
  );
  console.log(`wrote ${count} fake backups in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const { jobs } = loadJobs({
    env: { DATABASE_URL: 'postgresql://bench@127.0.0.1:1/shop', BACKUP_DIR: backupDir, LOG_FILE: '' },
    cwd: dir,
  });
  const logger = new LineLogger({ level: 'error' });
  const cache = new DashboardCache(jobs, logger);
  t0 = performance.now();
  await cache.refresh();
  const coldMs = performance.now() - t0;
  const rows = cache.data.jobs[0]!.backups.length;
  console.log(`cache read from BACKUP_DIR (cold, once, off the request path): ${coldMs.toFixed(0)} ms, ${rows} backups`);

  const server = await startMetricsServer('127.0.0.1:0', new BackupMetrics(), {
    live: () => ({ ok: true }),
    ready: () => ({ ok: true }),
    extra: daemonDashboard('127.0.0.1:0', undefined, cache, logger),
  });
  const paths = [
    '/',
    '/assets/dashboard.js',
    '/api/v1/status',
    '/api/v1/backups?job=shop',
    '/api/v1/backups?job=shop&page=150&limit=25',
    '/api/v1/backups?job=shop&state=good&where=local&from=2026-03-01&to=2026-04-30&limit=100',
    '/api/v1/series?job=shop',
    '/api/v1/restore-tests?job=shop',
    '/api/v1/config',
  ];
  console.log(`\n${'answer'.padEnd(92)} ${'bytes'.padStart(9)} ${'median'.padStart(8)} ${'p95'.padStart(8)} ${'max'.padStart(8)}`);
  for (const path of paths) {
    const times: number[] = [];
    let bytes = 0;
    for (let i = 0; i < runs + 3; i++) {
      const t = performance.now();
      const res = await fetch(server.url + path);
      const body = await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}`);
      if (i >= 3) times.push(performance.now() - t); // 3 warm-up requests
      bytes = body.byteLength;
    }
    times.sort((a, b) => a - b);
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
    const ms = (x: number) => `${x.toFixed(1)} ms`.padStart(8);
    console.log(`${path.padEnd(92)} ${String(bytes).padStart(9)} ${ms(at(0.5))} ${ms(at(0.95))} ${ms(times[times.length - 1]!)}`);
  }
  await server.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
