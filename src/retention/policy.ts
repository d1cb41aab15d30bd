import { ConfigError } from '../errors/index.js';
import type { BackupState } from '../model/backup-state.js';

/**
 * Retention as a pure function: which backups stay, which go, and why. No I/O, no clock: the
 * caller passes `now`, so the same input always gives the same answer (and golden tests).
 */

/** One backup as retention sees it. */
export interface PolicyBackup {
  /** Base name, `<db>_YYYYMMDD_HHMMSS`. */
  readonly name: string;
  readonly database: string;
  /** Time of the backup: from the manifest, or from the name when there is none. Never mtime. */
  readonly time: Date;
  readonly state: BackupState;
  /** Why the backup is incomplete or corrupt (e.g. "no manifest", "size mismatch"), for reasons. */
  readonly detail?: string | undefined;
  /**
   * An incomplete copy whose run is known to be over (its manifest exists elsewhere, or its
   * process is gone) and which holds nothing restorable here (no artifact): removed at once.
   */
  readonly leftover?: boolean | undefined;
  /**
   * An incomplete copy with an artifact, of a backup that is good in another location: kept by
   * age like a good backup (never deleted before RETENTION_DAYS), but not counted as good here.
   */
  readonly goodElsewhere?: boolean | undefined;
  /** Never removed: the backup the current run just made. */
  readonly protected?: boolean | undefined;
}

/** The policy of one database (RETENTION_DAYS, BACKUP_KEEP_MIN, BACKUP_KEEP_DAILY/WEEKLY/MONTHLY). */
export interface RetentionPolicy {
  readonly database: string;
  /** Good backups older than this many days may go (0: every backup not otherwise kept). */
  readonly days: number;
  /** The newest N good backups always stay, whatever their age (prune() and the config require ≥ 1). */
  readonly keepMin: number;
  /** Newest good backup of each of the last N UTC days (counted from `now`, today included). */
  readonly keepDaily: number;
  /** Newest good backup of each of the last N ISO weeks (UTC, this week included). */
  readonly keepWeekly: number;
  /** Newest good backup of each of the last N months (UTC, this month included). */
  readonly keepMonthly: number;
}

/** What happens to one backup, with every reason that applies (`kept: newest 3`, …). */
export interface Decision {
  readonly name: string;
  readonly database: string;
  readonly time: Date;
  readonly state: BackupState;
  readonly reasons: readonly string[];
}

/** Both lists are newest first (ties by name, descending). */
export interface PolicyResult {
  readonly keep: readonly Decision[];
  readonly remove: readonly Decision[];
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** An incomplete backup younger than this may still be written by a running backup. */
const IN_PROGRESS_GRACE_MS = 24 * HOUR;

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `YYYY-MM-DD` of a date in UTC. */
export function dayKey(d: Date): string {
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** ISO 8601 week of a date in UTC, `YYYY-Www` (the year is the ISO week-numbering year). */
export function isoWeekKey(d: Date): string {
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const weekday = (new Date(day).getUTCDay() + 6) % 7; // Monday = 0
  const thursday = new Date(day + (3 - weekday) * DAY);
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * DAY));
  return `${pad(year, 4)}-W${pad(week)}`;
}

/** `YYYY-MM` of a date in UTC. */
export function monthKey(d: Date): string {
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}`;
}

/** Keys of the last `n` periods ending with the one that contains `now`. */
function lastPeriods(kind: 'daily' | 'weekly' | 'monthly', n: number, now: Date): Set<string> {
  const keys = new Set<string>();
  for (let i = 0; i < n; i++) {
    if (kind === 'daily') keys.add(dayKey(new Date(now.getTime() - i * DAY)));
    else if (kind === 'weekly') keys.add(isoWeekKey(new Date(now.getTime() - i * 7 * DAY)));
    else keys.add(monthKey(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i, 1))));
  }
  return keys;
}

const PERIOD_KEY = { daily: dayKey, weekly: isoWeekKey, monthly: monthKey } as const;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function ageText(ms: number): string {
  return ms >= DAY ? plural(Math.floor(ms / DAY), 'day') : `${Math.floor(ms / HOUR)} h`;
}

/** Throws a ConfigError naming the variable when a policy number is not a whole number ≥ 0. */
function checkPolicy(policy: RetentionPolicy, now: Date): void {
  const fields = [
    ['RETENTION_DAYS', policy.days],
    ['BACKUP_KEEP_MIN', policy.keepMin],
    ['BACKUP_KEEP_DAILY', policy.keepDaily],
    ['BACKUP_KEEP_WEEKLY', policy.keepWeekly],
    ['BACKUP_KEEP_MONTHLY', policy.keepMonthly],
  ] as const;
  const problems = fields
    .filter(([, v]) => !Number.isSafeInteger(v) || v < 0)
    .map(([k, v]) => `${k}: must be a whole number ≥ 0 (got ${String(v)})`);
  if (Number.isNaN(now.getTime())) problems.push('now: invalid date');
  if (problems.length) throw new ConfigError(problems);
}

function newestFirst(a: PolicyBackup, b: PolicyBackup): number {
  return b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);
}

/**
 * Decide which backups of `policy.database` to keep and which to remove (backups of other
 * databases appear in neither list). Rules:
 * - good backups older than `days` go, unless protected by `keepMin` (the newest N good
 *   backups, whatever their age) or by GFS (newest good backup of each of the last N days,
 *   ISO weeks, months in UTC, counted from `now`);
 * - incomplete backups younger than 24 h are never touched (a backup may be running); older
 *   ones are leftovers of failed runs and go;
 * - corrupt backups never count toward keepMin or GFS, and go once older than `days`;
 * - foreign backups (not made by pgbak) and protected ones (made by the current run) always stay;
 * - a leftover (see PolicyBackup) goes at once; an incomplete copy of a backup that is good
 *   elsewhere ages like a good backup.
 * A backup dated in the future (clock skew) has age 0.
 */
export function applyPolicy(backups: readonly PolicyBackup[], policy: RetentionPolicy, now: Date): PolicyResult {
  checkPolicy(policy, now);
  const mine = backups.filter((b) => b.database === policy.database).sort(newestFirst);
  const reasons = new Map<PolicyBackup, { keep: string[]; remove: string[] }>();
  for (const b of mine) reasons.set(b, { keep: [], remove: [] });
  const at = (b: PolicyBackup) => reasons.get(b)!;

  const good = mine.filter((b) => b.state === 'good');
  for (const b of good.slice(0, policy.keepMin)) at(b).keep.push(`kept: newest ${policy.keepMin}`);

  const gfs = [
    ['daily', policy.keepDaily],
    ['weekly', policy.keepWeekly],
    ['monthly', policy.keepMonthly],
  ] as const;
  for (const [kind, n] of gfs) {
    if (n === 0) continue;
    const open = lastPeriods(kind, n, now);
    for (const b of good) {
      const key = PERIOD_KEY[kind](b.time);
      if (open.delete(key)) at(b).keep.push(`kept: ${kind} ${key}`);
    }
  }

  const maxAge = policy.days * DAY;
  for (const b of mine) {
    const r = at(b);
    const age = Math.max(0, now.getTime() - b.time.getTime());
    if (b.protected) r.keep.push('kept: made by this run');
    if (b.state === 'foreign') {
      r.keep.push('kept: not made by pgbak (no manifest, no run record); `pgbak adopt` takes it in');
    } else if (b.protected) {
      // never removed
    } else if (b.state === 'good' || (b.state === 'incomplete' && b.goodElsewhere)) {
      const note = b.state === 'good' ? '' : ` (${b.detail ?? 'incomplete'} here; good in the other location)`;
      if (age <= maxAge) r.keep.push(`kept: younger than ${plural(policy.days, 'day')}${note}`);
      else if (r.keep.length === 0) r.remove.push(`removed: older than ${plural(policy.days, 'day')}${note}`);
    } else if (b.state === 'incomplete' && b.leftover) {
      r.remove.push(`removed: leftover of a finished run (${b.detail ?? 'no manifest'})`);
    } else if (b.state === 'incomplete') {
      const detail = b.detail ?? 'no manifest';
      if (age < IN_PROGRESS_GRACE_MS) r.keep.push(`kept: incomplete, may still be in progress (< 24 h)`);
      else r.remove.push(`removed: leftover of a failed run (${detail}, ${ageText(age)} old)`);
    } else {
      const detail = b.detail ? `corrupt: ${b.detail}` : 'corrupt';
      if (age <= maxAge) r.keep.push(`kept: younger than ${plural(policy.days, 'day')} (${detail}; not counted as good)`);
      else r.remove.push(`removed: ${detail}, older than ${plural(policy.days, 'day')}`);
    }
  }

  const keep: Decision[] = [];
  const remove: Decision[] = [];
  for (const b of mine) {
    const r = at(b);
    const base = { name: b.name, database: b.database, time: b.time, state: b.state };
    if (r.remove.length) remove.push({ ...base, reasons: r.remove });
    else keep.push({ ...base, reasons: r.keep });
  }
  return { keep, remove };
}
