import { describe, expect, it } from 'vitest';
import { DaemonHealth, type JobReadiness } from '../../src/api/health.js';
import { databaseJob } from '../../src/api/server-run.js';
import { loadJobs } from '../../src/config/config-file.js';
import type { BackupResult } from '../../src/model/backup-result.js';

/** /readyz of a whole-server job (BACKUP_DATABASES): a line a database, one answer for the job. */

const load = (env: Record<string, string>) =>
  loadJobs({ env: { DATABASE_URL: 'postgresql://bak@db.example:5432/postgres', BACKUP_RPO: '6h', ...env }, cwd: '/', envFile: false })
    .jobs[0]!;
const T0 = Date.parse('2026-12-06T00:00:00Z');
const H = 3_600_000;

function result(database: string, status: BackupResult['status'], at: number): BackupResult {
  const iso = new Date(at).toISOString();
  return {
    status,
    job: database,
    database,
    name: status === 'failed' ? undefined : `${database}_20261206_000000`,
    startedAt: iso,
    finishedAt: iso,
    durationMs: 0,
    sizeBytes: undefined,
    sha256: undefined,
    encrypted: false,
    locations: [],
    error: undefined,
    warnings: [],
  };
}

const detailOf = (h: DaemonHealth, now: number) => h.report(now).detail as JobReadiness[];

describe('DaemonHealth: a whole-server job at /readyz', () => {
  const server = load({ BACKUP_DATABASES: 'all' });
  const one = load({ DATABASE_URL: 'postgresql://bak@db2.example:5432/wiki' });

  it('before any run: each database seeded from storage has its line; a database without a good backup makes the job not ready', () => {
    const h = new DaemonHealth([server]);
    const status = (good: boolean, runOk: boolean) =>
      ({
        newestGood: good ? { time: new Date(T0).toISOString() } : null,
        lastRun: { status: runOk ? 'ok' : 'failed' },
      }) as never;
    h.seed(server, status(true, true), 'shop');
    h.seed(server, status(false, false), 'crm');
    const [job] = detailOf(h, T0 + H);
    expect(job).toMatchObject({
      job: 'postgres',
      ok: false,
      newestGoodAgeSeconds: null,
      problems: ['1 of 2 databases not ready: crm'],
    });
    expect(job!.databases).toEqual([
      { database: 'crm', ok: false, newestGoodAgeSeconds: null, lastRunOk: false, problems: ['no good backup', 'last run failed'] },
      { database: 'shop', ok: true, newestGoodAgeSeconds: 3600, lastRunOk: true, problems: [] },
    ]);
    expect(h.report(T0 + H).ok).toBe(false);
  });

  it("a run's databases replace the known ones; the job is ready when every database is, and says which is stale", () => {
    const h = new DaemonHealth([server, one]);
    h.seed(server, { newestGood: { time: new Date(T0).toISOString() }, lastRun: null } as never, 'dropped');
    h.recordRun(one, result('wiki', 'ok', T0));
    h.recordRun(server, result('2 databases', 'ok', T0), [result('crm', 'ok', T0), result('shop', 'ok', T0)]);
    let report = h.report(T0 + H);
    expect(report.ok).toBe(true);
    const [job, single] = report.detail as JobReadiness[];
    expect(job!.databases!.map((d) => d.database)).toEqual(['crm', 'shop']);
    expect(job).toMatchObject({ ok: true, newestGoodAgeSeconds: 3600, lastRunOk: true, problems: [] });
    // A one-database job keeps its one line, without `databases`.
    expect(single).toEqual({ job: 'wiki', database: 'wiki', ok: true, newestGoodAgeSeconds: 3600, lastRunOk: true, problems: [] });

    // shop fails the next run: crm is fresh, shop's backup ages past BACKUP_RPO.
    h.recordRun(server, result('2 databases', 'partial', T0 + 5 * H), [
      result('crm', 'ok', T0 + 5 * H),
      result('shop', 'failed', T0 + 5 * H),
    ]);
    h.recordRun(one, result('wiki', 'ok', T0 + 5 * H));
    report = h.report(T0 + 7 * H);
    expect(report.ok).toBe(false);
    const [after] = report.detail as JobReadiness[];
    expect(after).toMatchObject({
      ok: false,
      newestGoodAgeSeconds: 7 * 3600,
      lastRunOk: false,
      problems: ['1 of 2 databases not ready: shop'],
    });
    expect(after!.databases!.find((d) => d.database === 'shop')!.problems).toEqual([
      'newest good backup is 7h old (BACKUP_RPO 6h)',
      'last run failed',
    ]);
    expect(after!.databases!.find((d) => d.database === 'crm')).toMatchObject({ ok: true, newestGoodAgeSeconds: 2 * 3600 });
  });

  it('a run whose discovery failed (no database result) keeps the known databases and says the last run failed', () => {
    const h = new DaemonHealth([server]);
    h.recordRun(server, result('1 databases', 'ok', T0), [result('shop', 'ok', T0)]);
    h.recordRun(server, result('0 databases', 'failed', T0 + H), []);
    const [job] = detailOf(h, T0 + 2 * H);
    expect(job).toMatchObject({ ok: false, lastRunOk: false, problems: ['last run failed'] });
    expect(job!.databases!.map((d) => [d.database, d.ok])).toEqual([['shop', true]]);
  });

  it('the unit of a database is named like a one-database job of it', () => {
    expect(databaseJob(server, 'shop').name).toBe('shop');
  });
});
