import { describe, expect, it } from 'vitest';
import { judgeSize } from '../../src/catalog/size-trend.js';

describe('judgeSize', () => {
  it('makes no judgement with fewer than 3 earlier good backups', () => {
    for (const history of [[], [1000], [1000, 1000]]) {
      const j = judgeSize(1, history, 0.5);
      expect(j.anomalous).toBe(false);
      expect(j.median).toBeUndefined();
      expect(j.reason).toMatch(/no judgement: \d earlier good backups?, at least 3/);
    }
  });

  it('judges from exactly 3 earlier backups', () => {
    const j = judgeSize(100, [1000, 1000, 1000], 0.5);
    expect(j).toMatchObject({ anomalous: true, median: 1000, deviation: -0.9 });
    expect(j.reason).toContain('90% smaller');
  });

  it('uses the median of the newest 7 only (history newest first)', () => {
    // The 8th and later entries (huge) must be ignored; the median of the 7 newest is 1000.
    const history = [900, 1000, 1100, 950, 1050, 1000, 1000, 1e9, 1e9, 1e9];
    const j = judgeSize(1000, history, 0.1);
    expect(j).toMatchObject({ anomalous: false, median: 1000, deviation: 0 });
    // With the old huge sizes inside the window the median would move and 1000 would be anomalous.
    expect(judgeSize(1000, [1e9, 1e9, 1e9, 1e9, 1000, 1000, 1000], 0.1).anomalous).toBe(true);
  });

  it('takes the mean of the two middle values for an even count', () => {
    expect(judgeSize(150, [100, 200, 100, 200], 0.5)).toMatchObject({ median: 150, deviation: 0, anomalous: false });
  });

  it('is robust to one outlier in the history', () => {
    // The median ignores a single failed-looking tiny backup that a mean would not.
    expect(judgeSize(1000, [10, 1000, 1000, 1000, 1000], 0.2).anomalous).toBe(false);
  });

  it('treats exactly ±tolerance as normal and anything beyond as anomalous', () => {
    const history = [1000, 1000, 1000];
    expect(judgeSize(1500, history, 0.5)).toMatchObject({ anomalous: false, deviation: 0.5 });
    expect(judgeSize(1501, history, 0.5).anomalous).toBe(true);
    expect(judgeSize(500, history, 0.5)).toMatchObject({ anomalous: false, deviation: -0.5 });
    expect(judgeSize(499, history, 0.5).anomalous).toBe(true);
    expect(judgeSize(1100, history, 0.1).anomalous).toBe(false);
    expect(judgeSize(1101, history, 0.1).anomalous).toBe(true);
  });

  it('says which direction and by how much', () => {
    const j = judgeSize(2048 * 1024, [1024 * 1024, 1024 * 1024, 1024 * 1024], 0.5);
    expect(j.anomalous).toBe(true);
    expect(j.deviation).toBe(1);
    expect(j.reason).toBe('size 2.0 MiB is 100% larger than the median 1.0 MiB of the last 3 good backups (tolerance ±50%)');
  });

  it('flags an empty backup after non-empty ones, and any size after empty ones', () => {
    expect(judgeSize(0, [500, 600, 700], 0.5)).toMatchObject({ anomalous: true, deviation: -1 });
    expect(judgeSize(10, [0, 0, 0], 0.5)).toMatchObject({ anomalous: true, median: 0 });
    expect(judgeSize(0, [0, 0, 0], 0.5)).toMatchObject({ anomalous: false, deviation: 0 });
  });

  it('with tolerance 0 any difference is anomalous', () => {
    expect(judgeSize(1000, [1000, 1000, 1000], 0).anomalous).toBe(false);
    expect(judgeSize(1001, [1000, 1000, 1000], 0).anomalous).toBe(true);
  });

  it('ignores unusable history entries and an unknown current size', () => {
    expect(judgeSize(1000, [Number.NaN, -1, 1000, 1000], 0.5).median).toBeUndefined();
    expect(judgeSize(Number.NaN, [1000, 1000, 1000], 0.5)).toMatchObject({ anomalous: false });
  });
});
