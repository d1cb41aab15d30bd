import type {
  BackupRow,
  BackupsPage,
  BackupStateName,
  ConfigView,
  DashboardData,
  Freshness,
  JobOverview,
  JobSnapshot,
  NotificationsView,
  StatusView,
  WalOverview,
  WhereName,
} from './view.js';

/**
 * The answers of `/api/v1/…`, computed from the cached {@link DashboardData}: pure functions, so
 * the daemon answers from memory and tests call them directly.
 */

/** The filter and page of `/api/v1/backups`. */
export interface BackupsQuery {
  readonly job: string;
  readonly state: BackupStateName | undefined;
  readonly where: WhereName | 'both' | undefined;
  /** Inclusive bounds on the backup's time (ms since the epoch). */
  readonly from: number | undefined;
  readonly to: number | undefined;
  /** 1-based. */
  readonly page: number;
  readonly limit: number;
}

export const DEFAULT_PAGE_SIZE = 25;
export const MAX_PAGE_SIZE = 500;

/** A request the API cannot answer: 400 with this message. */
export class BadQuery extends Error {}

const STATES: readonly BackupStateName[] = ['good', 'incomplete', 'corrupt', 'foreign'];
const WHERE: readonly (WhereName | 'both')[] = ['local', 'remote', 'both'];

function whole(value: string | null, name: string, fallback: number, max: number): number {
  if (value === null || value === '') return fallback;
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new BadQuery(`${name}: must be a whole number from 1`);
  return Math.min(Number(value), max);
}

/** A date (`2026-12-01`) or a time (`2026-12-01T10:00:00Z`); a bare date `to` includes that whole day. */
function time(value: string | null, name: string, endOfDay: boolean): number | undefined {
  if (value === null || value === '') return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new BadQuery(`${name}: must be a date such as 2026-12-01 or an ISO time`);
  return endOfDay && /^\d{4}-\d{2}-\d{2}$/.test(value) ? ms + 86_400_000 - 1 : ms;
}

/** Parse the query string of `/api/v1/backups`; throws {@link BadQuery}. */
export function parseBackupsQuery(params: URLSearchParams): BackupsQuery {
  const job = params.get('job');
  if (!job) throw new BadQuery('job: required (a job name from /api/v1/status)');
  const state = params.get('state') || undefined;
  if (state !== undefined && !(STATES as readonly string[]).includes(state)) throw new BadQuery(`state: one of ${STATES.join(', ')}`);
  const where = params.get('where') || undefined;
  if (where !== undefined && !(WHERE as readonly string[]).includes(where)) throw new BadQuery(`where: one of ${WHERE.join(', ')}`);
  return {
    job,
    state: state as BackupStateName | undefined,
    where: where as WhereName | 'both' | undefined,
    from: time(params.get('from'), 'from', false),
    to: time(params.get('to'), 'to', true),
    page: whole(params.get('page'), 'page', 1, 1_000_000),
    limit: whole(params.get('limit'), 'limit', DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
  };
}

function matches(b: BackupRow, q: BackupsQuery): boolean {
  if (q.state && b.state !== q.state) return false;
  if (q.where === 'both' && b.locations.length < 2) return false;
  if ((q.where === 'local' || q.where === 'remote') && !b.locations.includes(q.where)) return false;
  if (q.from !== undefined || q.to !== undefined) {
    const t = Date.parse(b.time);
    if (q.from !== undefined && t < q.from) return false;
    if (q.to !== undefined && t > q.to) return false;
  }
  return true;
}

/** The job's snapshot; undefined when no job has that name. */
export function snapshotOf(data: DashboardData, job: string): JobSnapshot | undefined {
  return data.jobs.find((j) => j.overview.job === job);
}

/** One page of the job's backups (newest first) matching the query; undefined for an unknown job. */
export function backupsPage(data: DashboardData, q: BackupsQuery): BackupsPage | undefined {
  const snap = snapshotOf(data, q.job);
  if (!snap) return undefined;
  const unfiltered = !q.state && !q.where && q.from === undefined && q.to === undefined;
  const rows = unfiltered ? snap.backups : snap.backups.filter((b) => matches(b, q));
  const pages = Math.max(1, Math.ceil(rows.length / q.limit));
  const start = (q.page - 1) * q.limit;
  return { job: q.job, total: rows.length, page: q.page, limit: q.limit, pages, backups: rows.slice(start, start + q.limit) };
}

/** Red without a good backup within the RPO; amber past 3/4 of it or after a run that was not ok; else green. */
export function freshnessOf(ageMs: number | undefined, rpoMs: number, lastRunOk: boolean): Freshness {
  if (ageMs === undefined || ageMs >= rpoMs) return 'red';
  if (ageMs >= rpoMs * 0.75 || !lastRunOk) return 'amber';
  return 'green';
}

/** The overview row with the age and freshness as of `now`. */
function overviewAt(o: JobOverview, now: number): JobOverview {
  const ageMs = o.newestGood ? Math.max(0, now - Date.parse(o.newestGood.time)) : undefined;
  const lastRunOk = !o.lastRun || o.lastRun.status === 'ok' || o.lastRun.status === 'dry-run';
  return {
    ...o,
    newestGood: o.newestGood && ageMs !== undefined ? { ...o.newestGood, ageMs } : null,
    freshness: freshnessOf(ageMs, o.rpoMs, lastRunOk),
    wal: o.wal ? walAt(o.wal, now) : null,
  };
}

/** The WAL section with the newest segment's age and freshness (against WAL_RPO) as of `now`. */
function walAt(w: WalOverview, now: number): WalOverview {
  const ageMs = w.storedAt ? Math.max(0, now - Date.parse(w.storedAt)) : null;
  return { ...w, ageMs, freshness: freshnessOf(ageMs ?? undefined, w.rpoMs, true) };
}

/** `/api/v1/status` as of `now`. */
export function statusView(data: DashboardData, now: Date = new Date()): StatusView {
  const jobs = data.jobs.map((j) => overviewAt(j.overview, now.getTime()));
  return { ok: jobs.every((j) => j.ok), generatedAt: now.toISOString(), refreshedAt: data.refreshedAt, problems: data.problems, jobs };
}

/** `/api/v1/notifications`: each job's last run's deliveries, newest first. */
export function notificationsView(data: DashboardData): NotificationsView {
  const deliveries = data.jobs.flatMap((j) => j.deliveries).sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  return { deliveries };
}

/** `/api/v1/config` */
export function configView(data: DashboardData): ConfigView {
  return { jobs: data.jobs.map((j) => ({ job: j.overview.job, settings: j.settings })) };
}
