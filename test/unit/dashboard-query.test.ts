import { describe, expect, it } from 'vitest';
import { isLoopbackHost, sameSecret } from '../../src/dashboard/auth.js';
import { scriptSafeJson } from '../../src/dashboard/assets.js';
import { BadQuery, backupsPage, freshnessOf, parseBackupsQuery, statusView } from '../../src/dashboard/query.js';
import type { BackupRow, DashboardData, JobOverview } from '../../src/dashboard/view.js';
import { restoreCommand } from '../../src/api/dashboard-data.js';
import { dashboardSchemas } from '../helpers/dashboard-schemas.js';
import type { JobConfig } from '../../src/config/job.js';

const H = 3600_000;

function row(i: number, over: Partial<BackupRow> = {}): BackupRow {
  const time = new Date(Date.UTC(2026, 11, 1) - i * 6 * H).toISOString();
  return {
    name: `shop_${i}`,
    time,
    sizeBytes: 1000 + i,
    durationMs: 1000,
    compression: 'zstd:3 (stream)',
    encrypted: false,
    state: 'good',
    locations: ['local', 'remote'],
    problems: [],
    verified: null,
    restoreCommand: `pgbak restore shop_${i} --target shop_restore --create`,
    ...over,
  };
}

const overview: JobOverview = {
  job: 'shop',
  database: 'shop',
  ok: true,
  freshness: 'red',
  reasons: [],
  warnings: [],
  rpoMs: 6 * H,
  newestGood: { name: 'shop_0', time: '2026-12-01T00:00:00.000Z', ageMs: 0, sizeBytes: 1000, locations: ['local'] },
  lastRun: null,
  nextRunAt: null,
  schedule: { cron: '0 */6 * * *', timezone: 'UTC' },
  destination: '/b',
  where: { backupDir: '/b', bucket: null },
  encryption: { enabled: false, method: null, recipient: null },
  counts: { good: 1, incomplete: 0, corrupt: 0 },
  lastRestoreTest: null,
  wal: {
    location: 's3://b/p/wal/',
    newestSegment: '000000010000000000000007',
    storedAt: '2026-12-01T04:58:00.000Z',
    ageMs: 0,
    rpoMs: 5 * 60_000,
    freshness: 'red',
    newestBase: { name: 'base_20261201_000000', time: '2026-12-01T00:00:10.000Z', sizeBytes: 5000 },
    chain: { state: 'complete', from: 'base_20261201_000000', segments: 5, firstGap: null, conflicts: [], problem: null },
  },
};

const backups = Array.from({ length: 60 }, (_, i) =>
  row(i, i % 10 === 9 ? { state: 'incomplete', locations: ['local'], restoreCommand: null } : i % 7 === 3 ? { locations: ['local'] } : {}),
);
const data: DashboardData = {
  refreshedAt: '2026-12-01T00:00:00.000Z',
  problems: [],
  jobs: [
    {
      overview,
      backups,
      series: { job: 'shop', points: [] },
      restoreTests: { job: 'shop', rtoTargetMs: 4 * H, tests: [] },
      deliveries: [],
      settings: {},
    },
  ],
};
const q = (s: string) => parseBackupsQuery(new URLSearchParams(s));

describe('dashboard API: filter and pages on the server', () => {
  it('pages newest first with the default page size, and says how many there are', () => {
    const p1 = dashboardSchemas.backups.parse(backupsPage(data, q('job=shop')));
    expect([p1.total, p1.pages, p1.backups.length, p1.backups[0]!.name]).toEqual([60, 3, 25, 'shop_0']);
    const p3 = backupsPage(data, q('job=shop&page=3'))!;
    expect(p3.backups.map((b) => b.name)).toEqual(backups.slice(50).map((b) => b.name));
    expect(backupsPage(data, q('job=shop&page=9'))!.backups).toEqual([]);
  });

  it('filters by state, where and date (a bare `to` date includes that day)', () => {
    expect(backupsPage(data, q('job=shop&state=incomplete&limit=500'))!.backups.map((b) => b.name)).toEqual([
      'shop_9',
      'shop_19',
      'shop_29',
      'shop_39',
      'shop_49',
      'shop_59',
    ]);
    const both = backupsPage(data, q('job=shop&where=both&limit=500'))!;
    expect(both.backups.every((b) => b.locations.length === 2)).toBe(true);
    const remote = backupsPage(data, q('job=shop&where=remote&limit=500'))!;
    expect(remote.total).toBe(both.total);
    // 2026-11-30: the backups at 18:00, 12:00, 06:00 and 00:00 of that day (i = 1..4).
    const day = backupsPage(data, q('job=shop&from=2026-11-30&to=2026-11-30'))!;
    expect(day.backups.map((b) => b.name)).toEqual(['shop_1', 'shop_2', 'shop_3', 'shop_4']);
  });

  it('refuses what it cannot answer with a BadQuery (400), and an unknown job with undefined (404)', () => {
    for (const bad of ['', 'job=shop&state=lost', 'job=shop&where=moon', 'job=shop&page=0', 'job=shop&limit=x', 'job=shop&from=yesterday'])
      expect(() => q(bad), bad).toThrow(BadQuery);
    expect(q('job=shop&limit=100000').limit).toBe(500);
    expect(backupsPage(data, q('job=nosuch'))).toBeUndefined();
  });

  it('judges freshness as of the answer: red past the RPO or with no good backup, amber past 3/4 of it or after a failed run', () => {
    expect(freshnessOf(undefined, 6 * H, true)).toBe('red');
    expect(freshnessOf(6 * H, 6 * H, true)).toBe('red');
    expect(freshnessOf(5 * H, 6 * H, true)).toBe('amber');
    expect(freshnessOf(1 * H, 6 * H, false)).toBe('amber');
    expect(freshnessOf(1 * H, 6 * H, true)).toBe('green');
    const view = dashboardSchemas.status.parse(statusView(data, new Date('2026-12-01T05:00:00Z')));
    expect([view.jobs[0]!.freshness, view.jobs[0]!.newestGood!.ageMs]).toEqual(['amber', 5 * H]);
    // The WAL archive's newest segment against WAL_RPO (5 min), as of the answer too.
    expect([view.jobs[0]!.wal!.freshness, view.jobs[0]!.wal!.ageMs]).toEqual(['green', 2 * 60_000]);
    const later = (iso: string) => statusView(data, new Date(iso)).jobs[0]!.wal!.freshness;
    expect([later('2026-12-01T05:02:00Z'), later('2026-12-01T05:03:00Z')]).toEqual(['amber', 'red']);
  });
});

describe('dashboard security helpers', () => {
  it('knows loopback addresses, and all interfaces is not one', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of [undefined, '0.0.0.0', '::', '10.0.0.1', '192.168.1.10', 'db.example'])
      expect(isLoopbackHost(h), String(h)).toBe(false);
  });

  it('compares secrets whole, whatever their length', () => {
    expect(sameSecret('token-1234', 'token-1234')).toBe(true);
    expect(sameSecret('token-1234', 'token-1235')).toBe(false);
    expect(sameSecret('token-1234', 'token-12345')).toBe(false);
    expect(sameSecret('', 'x')).toBe(false);
  });

  it('embeds JSON in a <script> block without ever closing it', () => {
    const text = scriptSafeJson({ name: '</script><script>alert(1)</script>', sep: '\u2028' });
    expect(text).not.toMatch(/<\/script/i);
    expect(text).not.toContain('<');
    expect(JSON.parse(text)).toEqual({ name: '</script><script>alert(1)</script>', sep: '\u2028' });
  });

  it('quotes what the shell would read otherwise in the restore command', () => {
    const job = { name: 'shop', database: "o'brien <db>" } as JobConfig;
    expect(restoreCommand('x_20261201_000000', job, true)).toBe(
      `pgbak restore x_20261201_000000 --job shop --target 'o'\\''brien <db>_restore' --create`,
    );
  });
});
