import { describe, expect, it } from 'vitest';
import { mergeListed, sameBackup, type ListedBackup } from '../../src/api/list.js';

const base: ListedBackup = {
  kind: 'dump',
  name: 'shop_20261201_120000',
  database: 'shop',
  systemIdentifier: '7000000000000000001',
  sha256: 'a'.repeat(64),
  time: '2026-12-01T12:00:00.000Z',
  sizeBytes: 1000,
  encrypted: false,
  locations: ['local'],
  state: 'good',
  problems: [],
  paths: ['/var/backups/shop_20261201_120000.dump'],
  copies: { local: { state: 'good', problems: [] } },
  verified: null,
};

describe('list: one backup seen by two jobs', () => {
  it('merges the locations, paths and copies each job saw', () => {
    const fromBucketJob: ListedBackup = {
      ...base,
      locations: ['local', 'remote'],
      paths: [base.paths[0]!, 's3://b/daemon/shop/shop_20261201_120000.dump'],
      copies: { local: { state: 'good', problems: [] }, remote: { state: 'good', problems: [] } },
      verified: { time: '2026-12-01T13:00:00.000Z', ok: true, kind: 'restore-test', durationMs: 5 },
    };
    expect(sameBackup(base, fromBucketJob)).toBe(true);
    const merged = mergeListed(base, fromBucketJob);
    expect(merged.locations).toEqual(['local', 'remote']);
    expect(merged.paths).toEqual(fromBucketJob.paths);
    expect(Object.keys(merged.copies)).toEqual(['local', 'remote']);
    expect(merged.verified?.time).toBe('2026-12-01T13:00:00.000Z');
    expect(mergeListed(fromBucketJob, base).locations).toEqual(['local', 'remote']);
  });

  it('keeps apart a same-named backup of another database, another server or other bytes', () => {
    expect(sameBackup(base, { ...base, database: 'crm' })).toBe(false);
    expect(sameBackup(base, { ...base, systemIdentifier: '7000000000000000002' })).toBe(false);
    expect(sameBackup(base, { ...base, sha256: 'b'.repeat(64) })).toBe(false);
    // A foreign dump (no manifest: no server, no sha256) of the same name and database is the same file.
    expect(sameBackup({ ...base, systemIdentifier: undefined, sha256: undefined }, base)).toBe(true);
  });

  it('the best state wins, and each problem is said once', () => {
    const a: ListedBackup = { ...base, state: 'corrupt', problems: ['local: size differs'] };
    const b: ListedBackup = { ...base, locations: ['remote'], state: 'good', problems: ['local: size differs'] };
    const m = mergeListed(a, b);
    expect(m.state).toBe('good');
    expect(m.problems).toEqual(['local: size differs']);
  });
});
