import { describe, expect, it } from 'vitest';
import type { ArchivedWal } from '../../src/wal/wal-archive.js';
import { checkChain } from '../../src/wal/wal-chain.js';
import { backupHistoryName, parseHistory, parseLsn, parseWalFileName, segmentName, segmentsBetween } from '../../src/wal/wal-names.js';

const SEG = 16 * 1024 * 1024;
const sha = (n: number) => n.toString(16).padStart(64, '0');

function archived(names: string[], content = 1): ArchivedWal[] {
  return names.map((name) => ({
    key: `wal/1/${name}~${sha(content)}.zst`,
    file: parseWalFileName(name)!,
    sha256: sha(content),
    encoding: { method: 'zstd', encrypted: false },
    size: 1,
    modified: new Date(0),
  }));
}

const seg = (tl: number, n: number) => segmentName(tl, BigInt(n));

describe('WAL names', () => {
  it('segment names, LSNs and backup history names as PostgreSQL writes them', () => {
    expect(seg(1, 1)).toBe('000000010000000000000001');
    expect(seg(2, 0x100)).toBe('000000020000000100000000');
    expect(segmentsBetween(1, parseLsn('0/6000028'), parseLsn('0/6000100'))).toEqual(['000000010000000000000006']);
    expect(segmentsBetween(1, parseLsn('0/6000028'), parseLsn('0/8000000'))).toEqual([seg(1, 6), seg(1, 7)]);
    expect(backupHistoryName(1, parseLsn('0/4000028'))).toBe('000000010000000000000004.00000028.backup');
    expect(parseWalFileName('00000002.history')).toMatchObject({ kind: 'history', timeline: 2 });
    expect(parseWalFileName('000000010000000000000004.partial')).toMatchObject({ kind: 'partial', segment: seg(1, 4) });
    expect(parseWalFileName('000000010000000000000004.00000028.backup')).toMatchObject({ kind: 'backup' });
    expect(parseWalFileName('RECOVERYXLOG')).toBeUndefined();
    expect(parseHistory('1\t0/5000A0\tbefore 2026-12-05 18:48:27.66+00\n')).toEqual([{ timeline: 1, switchpoint: 0x5000a0n }]);
  });
});

describe('checkChain', () => {
  it('complete on one timeline: from the base backup to the newest segment', () => {
    const r = checkChain(archived([seg(1, 3), seg(1, 4), seg(1, 5), seg(1, 6)]), new Map(), { timeline: 1, segment: seg(1, 4) }, SEG);
    expect(r.firstGap).toBeUndefined();
    expect(r.stretches).toEqual([{ timeline: 1, first: seg(1, 4), last: seg(1, 6), segments: 3 }]);
  });

  it('names the first gap', () => {
    const r = checkChain(archived([seg(1, 4), seg(1, 6), seg(1, 8)]), new Map(), { timeline: 1, segment: seg(1, 4) }, SEG);
    expect(r.firstGap).toBe(seg(1, 5));
  });

  it('follows a timeline switch: timeline 1 up to the switch segment, timeline 2 from it (the old one is only a .partial)', () => {
    const names = [seg(1, 4), seg(1, 5), `${seg(1, 6)}.partial`, seg(1, 7), '00000002.history', seg(2, 6), seg(2, 7), seg(2, 8)];
    const histories = new Map([[2, parseHistory('1\t0/6000100\tno recovery target specified\n')]]);
    const r = checkChain(archived(names), histories, { timeline: 1, segment: seg(1, 4) }, SEG);
    expect(r.firstGap).toBeUndefined();
    expect(r.stretches).toEqual([
      { timeline: 1, first: seg(1, 4), last: seg(1, 5), segments: 2 },
      { timeline: 2, first: seg(2, 6), last: seg(2, 8), segments: 3 },
    ]);
    const gap = checkChain(archived(names.filter((n) => n !== seg(2, 7))), histories, { timeline: 1, segment: seg(1, 4) }, SEG);
    expect(gap.firstGap).toBe(seg(2, 7));
  });

  it('reports a name archived with two contents', () => {
    const r = checkChain([...archived([seg(1, 4)]), ...archived([seg(1, 4)], 2)], new Map(), { timeline: 1, segment: seg(1, 4) }, SEG);
    expect(r.conflicts).toEqual([seg(1, 4)]);
  });
});
