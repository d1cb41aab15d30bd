import { describe, expect, it } from 'vitest';
import type { ArchivedWal } from '../../src/wal/wal-archive.js';
import { parseWalFileName } from '../../src/wal/wal-names.js';
import { planWalRetention } from '../../src/wal/wal-retention.js';

const wal = (name: string): ArchivedWal => ({
  key: `wal/1/${name}~${'0'.repeat(64)}.zst`,
  file: parseWalFileName(name)!,
  sha256: '0'.repeat(64),
  encoding: { method: 'zstd', encrypted: false },
  size: 1,
  modified: new Date(0),
});

describe('planWalRetention', () => {
  const archived = [
    '000000010000000000000001',
    '000000010000000000000002',
    '000000010000000000000002.00000028.backup',
    '000000010000000000000003',
    '000000010000000000000004',
    '000000010000000000000004.00000060.backup',
    '000000010000000000000005.partial',
    '00000002.history',
    '000000020000000000000001',
    '000000020000000000000005',
    '000000020000000000000006',
  ].map(wal);

  it('deletes only segments (and .backup, .partial files) older than the oldest kept base backup start, on every timeline; never a .history', () => {
    const plan = planWalRetention(archived, [{ name: 'base_b', firstSegment: '000000010000000000000004' }]);
    expect(plan.cutoff).toBe('000000010000000000000004');
    expect(plan.remove.map((a) => a.file.name)).toEqual([
      '000000010000000000000001',
      '000000010000000000000002',
      '000000010000000000000002.00000028.backup',
      '000000010000000000000003',
      '000000020000000000000001',
    ]);
    expect(plan.warnings).toEqual([]);
  });

  it('the oldest of several kept base backups decides', () => {
    const plan = planWalRetention(archived, [
      { name: 'base_b', firstSegment: '000000020000000000000006' },
      { name: 'base_a', firstSegment: '000000010000000000000002' },
    ]);
    expect(plan.remove.map((a) => a.file.name)).toEqual(['000000010000000000000001', '000000020000000000000001']);
  });

  it('with no base backup nothing is deleted, and it says so', () => {
    const plan = planWalRetention(archived, []);
    expect(plan.remove).toEqual([]);
    expect(plan.warnings[0]).toMatch(/no base backup: its WAL is kept/);
  });
});
