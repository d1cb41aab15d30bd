import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors/index.js';
import type { BackupState } from '../../src/model/backup-state.js';
import { applyPolicy, dayKey, isoWeekKey, monthKey, type PolicyBackup, type RetentionPolicy } from '../../src/retention/policy.js';

const H = 3_600_000;
const D = 24 * H;
const NOW = new Date('2026-11-28T12:00:00Z');

const policy = (p: Partial<RetentionPolicy> = {}): RetentionPolicy => ({
  database: 'shop',
  days: 30,
  keepMin: 0,
  keepDaily: 0,
  keepWeekly: 0,
  keepMonthly: 0,
  ...p,
});

/** A backup `ago` milliseconds before `now` (or at an ISO time), named after its time. */
function backup(at: number | string, state: BackupState = 'good', database = 'shop', now = NOW, detail?: string): PolicyBackup {
  const time = typeof at === 'string' ? new Date(at) : new Date(now.getTime() - at);
  const ts = time.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15);
  return { name: `${database}_${ts}`, database, time, state, detail };
}

/** name → 'keep: reason; reason' | 'remove: reason' for compact table expectations. */
function outcome(backups: PolicyBackup[], p: RetentionPolicy, now = NOW): Record<string, string> {
  const r = applyPolicy(backups, p, now);
  const out: Record<string, string> = {};
  for (const d of r.keep) out[d.name] = `keep: ${d.reasons.join('; ')}`;
  for (const d of r.remove) out[d.name] = `remove: ${d.reasons.join('; ')}`;
  return out;
}

interface Case {
  title: string;
  policy: Partial<RetentionPolicy>;
  now?: Date;
  backups: PolicyBackup[];
  expected: string[]; // in input order; '-' for "in neither list"
}

const cases: Case[] = [
  {
    title: 'ages: kept up to and including RETENTION_DAYS, removed after',
    policy: { days: 30 },
    backups: [backup(1 * H), backup(29 * D), backup(30 * D), backup(30 * D + 1000), backup(90 * D)],
    expected: [
      'keep: kept: younger than 30 days',
      'keep: kept: younger than 30 days',
      'keep: kept: younger than 30 days',
      'remove: removed: older than 30 days',
      'remove: removed: older than 30 days',
    ],
  },
  {
    title: 'keepMin keeps the newest 3 good backups when backups stopped 40 days ago',
    policy: { days: 30, keepMin: 3 },
    backups: [backup(40 * D), backup(41 * D), backup(42 * D), backup(43 * D), backup(44 * D)],
    expected: [
      'keep: kept: newest 3',
      'keep: kept: newest 3',
      'keep: kept: newest 3',
      'remove: removed: older than 30 days',
      'remove: removed: older than 30 days',
    ],
  },
  {
    title: 'RETENTION_DAYS=0 still keeps BACKUP_KEEP_MIN',
    policy: { days: 0, keepMin: 2 },
    backups: [backup(1 * H), backup(2 * H), backup(3 * H)],
    expected: ['keep: kept: newest 2', 'keep: kept: newest 2', 'remove: removed: older than 0 days'],
  },
  {
    title: 'keepMin counts only good backups; incomplete and corrupt ones are skipped',
    policy: { days: 30, keepMin: 2 },
    backups: [
      backup(2 * H, 'incomplete'),
      backup(3 * H, 'corrupt', 'shop', NOW, 'size mismatch'),
      backup(40 * D),
      backup(41 * D),
      backup(42 * D),
    ],
    expected: [
      'keep: kept: incomplete, may still be in progress (< 24 h)',
      'keep: kept: younger than 30 days (corrupt: size mismatch; not counted as good)',
      'keep: kept: newest 2',
      'keep: kept: newest 2',
      'remove: removed: older than 30 days',
    ],
  },
  {
    title: 'keepMin and age reasons are both listed',
    policy: { days: 30, keepMin: 1 },
    backups: [backup(1 * D)],
    expected: ['keep: kept: newest 1; kept: younger than 30 days'],
  },
  {
    title: 'daily GFS: newest good backup of each of the last 3 days, past RETENTION_DAYS',
    policy: { days: 0, keepDaily: 3 },
    backups: [
      backup('2026-11-28T06:00:00Z'),
      backup('2026-11-28T00:00:00Z'),
      backup('2026-11-27T18:00:00Z'),
      backup('2026-11-27T06:00:00Z'),
      backup('2026-11-26T23:59:59Z', 'corrupt'),
      backup('2026-11-26T00:00:00Z'),
      backup('2026-11-25T18:00:00Z'),
    ],
    expected: [
      'keep: kept: daily 2026-11-28',
      'remove: removed: older than 0 days',
      'keep: kept: daily 2026-11-27',
      'remove: removed: older than 0 days',
      'remove: removed: corrupt, older than 0 days',
      'keep: kept: daily 2026-11-26',
      'remove: removed: older than 0 days',
    ],
  },
  {
    title: 'daily GFS counts calendar days from now: a day without backups uses up its slot',
    policy: { days: 0, keepDaily: 2 },
    backups: [backup('2026-11-28T01:00:00Z'), backup('2026-11-26T01:00:00Z')],
    expected: ['keep: kept: daily 2026-11-28', 'remove: removed: older than 0 days'],
  },
  {
    title: 'monthly GFS across a month and a year boundary',
    policy: { days: 0, keepMonthly: 3 },
    now: new Date('2027-01-02T12:00:00Z'),
    backups: [
      backup('2027-01-01T00:00:01Z'),
      backup('2026-12-31T23:59:59Z'),
      backup('2026-12-01T00:00:00Z'),
      backup('2026-11-30T23:00:00Z'),
      backup('2026-10-31T23:00:00Z'),
    ],
    expected: [
      'keep: kept: monthly 2027-01',
      'keep: kept: monthly 2026-12',
      'remove: removed: older than 0 days',
      'keep: kept: monthly 2026-11',
      'remove: removed: older than 0 days',
    ],
  },
  {
    title: 'weekly GFS across the ISO year boundary 2026-W53 / 2027-W01',
    policy: { days: 0, keepWeekly: 3 },
    now: new Date('2027-01-05T12:00:00Z'), // Tuesday of 2027-W01
    backups: [
      backup('2027-01-04T00:30:00Z'), // Monday, 2027-W01
      backup('2027-01-03T23:00:00Z'), // Sunday, 2026-W53
      backup('2027-01-01T10:00:00Z'), // Friday, still 2026-W53
      backup('2026-12-27T10:00:00Z'), // Sunday, 2026-W52
      backup('2026-12-20T10:00:00Z'), // 2026-W51: outside the last 3 weeks
    ],
    expected: [
      'keep: kept: weekly 2027-W01',
      'keep: kept: weekly 2026-W53',
      'remove: removed: older than 0 days',
      'keep: kept: weekly 2026-W52',
      'remove: removed: older than 0 days',
    ],
  },
  {
    title: 'GFS rules combine, each listing its reason',
    policy: { days: 0, keepMin: 1, keepDaily: 1, keepWeekly: 1, keepMonthly: 2 },
    backups: [backup('2026-11-28T01:00:00Z'), backup('2026-11-20T01:00:00Z'), backup('2026-10-05T01:00:00Z')],
    expected: [
      'keep: kept: newest 1; kept: daily 2026-11-28; kept: weekly 2026-W48; kept: monthly 2026-11',
      'remove: removed: older than 0 days',
      'keep: kept: monthly 2026-10',
    ],
  },
  {
    title: 'leftovers without a manifest on both sides of 24 h',
    policy: { days: 30 },
    backups: [
      backup(24 * H - 1000, 'incomplete'),
      backup(24 * H, 'incomplete'),
      backup(3 * D + 5 * H, 'incomplete'),
      backup(30 * H, 'incomplete', 'shop', NOW, 'manifest without artifact'),
    ],
    expected: [
      'keep: kept: incomplete, may still be in progress (< 24 h)',
      'remove: removed: leftover of a failed run (no manifest, 1 day old)',
      'remove: removed: leftover of a failed run (no manifest, 3 days old)',
      'remove: removed: leftover of a failed run (manifest without artifact, 1 day old)',
    ],
  },
  {
    title: 'other databases are in neither list',
    policy: { days: 0, keepMin: 1 },
    backups: [
      backup(400 * D, 'good', 'other'),
      backup(400 * D, 'incomplete', 'other'),
      backup(2 * D),
      backup(400 * D, 'corrupt', 'shop_2'),
    ],
    expected: ['-', '-', 'keep: kept: newest 1', '-'],
  },
  {
    title: 'corrupt backups are kept while young, removed past RETENTION_DAYS, never count for keepMin',
    policy: { days: 30, keepMin: 1 },
    backups: [backup(35 * D, 'corrupt', 'shop', NOW, 'verification failed'), backup(36 * D), backup(37 * D)],
    expected: [
      'remove: removed: corrupt: verification failed, older than 30 days',
      'keep: kept: newest 1',
      'remove: removed: older than 30 days',
    ],
  },
  {
    title: 'a backup dated in the future (clock skew) counts as new',
    policy: { days: 0 },
    backups: [backup(-2 * H)],
    expected: ['keep: kept: younger than 0 days'],
  },
];

describe('applyPolicy', () => {
  it.each(cases)('$title', ({ policy: p, now, backups, expected }) => {
    const got = outcome(backups, policy(p), now ?? NOW);
    expect(backups.map((b) => got[b.name] ?? '-')).toEqual(expected);
  });

  it('returns both lists newest first, whatever the input order, ties by name', () => {
    const t = new Date('2026-10-01T00:00:00Z');
    const same = (name: string): PolicyBackup => ({ name, database: 'shop', time: t, state: 'good' });
    const input = [backup(70 * D), same('shop_b'), backup(1 * D), same('shop_a'), backup(2 * D), same('shop_c')];
    const shuffled = [input[3]!, input[0]!, input[5]!, input[2]!, input[1]!, input[4]!];
    const a = applyPolicy(input, policy({ keepMin: 3 }), NOW);
    const b = applyPolicy(shuffled, policy({ keepMin: 3 }), NOW);
    expect(b).toEqual(a);
    expect(a.keep.map((d) => d.name)).toEqual([input[2]!.name, input[4]!.name, 'shop_c']);
    expect(a.remove.map((d) => d.name)).toEqual(['shop_b', 'shop_a', input[0]!.name]);
  });

  it('puts every backup of the database in exactly one list', () => {
    const backups = Array.from({ length: 200 }, (_, i) => backup(i * 7 * H, (['good', 'incomplete', 'corrupt'] as const)[i % 3]));
    const r = applyPolicy(backups, policy({ days: 10, keepMin: 3, keepDaily: 5, keepWeekly: 4, keepMonthly: 2 }), NOW);
    const names = [...r.keep, ...r.remove].map((d) => d.name).sort();
    expect(names).toEqual(backups.map((b) => b.name).sort());
    expect(r.keep.filter((d) => d.reasons.includes('kept: newest 3'))).toHaveLength(3);
    for (const d of [...r.keep, ...r.remove]) expect(d.reasons.length).toBeGreaterThan(0);
  });

  it('rejects invalid numbers, naming the variable', () => {
    expect(() => applyPolicy([], policy({ keepMin: -2 }), NOW)).toThrow(ConfigError);
    expect(() => applyPolicy([], policy({ keepMin: -2, days: Number.NaN }), NOW)).toThrow(/RETENTION_DAYS.*\n.*BACKUP_KEEP_MIN/s);
    expect(() => applyPolicy([], policy({ keepWeekly: 1.5 }), NOW)).toThrow(/BACKUP_KEEP_WEEKLY/);
  });
});

describe('period keys (UTC)', () => {
  it.each([
    ['2026-01-01T00:00:00Z', '2026-W01'], // a Thursday: 2026 has 53 ISO weeks
    ['2026-11-23T00:00:00Z', '2026-W48'],
    ['2026-11-22T23:59:59Z', '2026-W47'],
    ['2026-12-31T23:59:59Z', '2026-W53'],
    ['2027-01-03T12:00:00Z', '2026-W53'],
    ['2027-01-04T00:00:00Z', '2027-W01'],
    ['2024-12-30T00:00:00Z', '2025-W01'],
    ['2021-01-03T00:00:00Z', '2020-W53'],
  ])('isoWeekKey(%s) = %s', (iso, week) => {
    expect(isoWeekKey(new Date(iso))).toBe(week);
  });

  it('uses UTC for days and months, not the local zone', () => {
    const d = new Date('2026-10-31T23:30:00Z');
    expect(dayKey(d)).toBe('2026-10-31');
    expect(monthKey(d)).toBe('2026-10');
  });
});
