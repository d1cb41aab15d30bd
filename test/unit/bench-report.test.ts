import { describe, expect, it } from 'vitest';
import { judge, pairedRatio, summarize, type ScenarioReport } from '../../bench/report.js';
import type { RunResult } from '../../bench/scenarios.js';

const run = (wallMs: number, backupMs?: number): RunResult => ({
  wallMs,
  cpuMs: null,
  pgbakMaxRssKiB: null,
  treeMaxRssKiB: null,
  pgbakCpuMs: null,
  outputBytes: 1,
  load1: 0,
  ...(backupMs === undefined ? {} : { steps: { backup: backupMs } }),
});

const scenario = (runs: RunResult[]): ScenarioReport => ({ title: '', command: '', runs, median: summarize(runs) });

describe('bench: ratios paired by repetition', () => {
  // Repetition 2 ran while the machine was busy: both scenarios took twice as long.
  const s = {
    zstd_T0: scenario([run(4000), run(8000), run(4200)]),
    e_local: scenario([run(4400, 4100), run(8800, 8300), run(4600, 4300)]),
  };

  it("is the median of each repetition's ratio, not the ratio of the medians", () => {
    // Each repetition: 1.1, 1.1, 1.095; the medians' ratio: 4600 / 4200 = 1.095.
    expect(pairedRatio(s, 'e_local', 'zstd_T0')).toBeCloseTo(1.1, 6);
    expect(judge(s).ratios['e_local/zstd_T0']).toBeCloseTo(4600 / 4200, 6);
  });

  it("takes a step's time for the numerator when asked: a backup's own time against the bare pipe", () => {
    // 4100/4000 = 1.025, 8300/8000 = 1.0375, 4300/4200 = 1.024: the median is the first.
    expect(pairedRatio(s, 'e_local', 'zstd_T0', (r) => r.steps?.backup)).toBeCloseTo(4100 / 4000, 6);
    // The medians: 4300 / 4200.
    expect(judge(s).ratios['e_local:backup/zstd_T0']).toBeCloseTo(4300 / 4200, 6);
  });

  it('is null when the runs do not pair up or a step is missing', () => {
    const odd = { ...s, zstd_T0: scenario([run(4000), run(4100)]) };
    expect(pairedRatio(odd, 'e_local', 'zstd_T0')).toBeNull();
    expect(pairedRatio(s, 'zstd_T0', 'e_local', (r) => r.steps?.backup)).toBeNull();
    expect(pairedRatio(s, 'e', 'zstd_T0')).toBeNull();
    expect(judge(s).ratios['e:backup/zstd_T0']).toBeNull();
  });
});
