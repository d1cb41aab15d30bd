import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/services.js';

const execFileAsync = promisify(execFile);

/** Keeps `npm run bench` from rotting: a tiny run must produce every scenario. Shape, never speed. */
describe('npm run bench (smoke)', () => {
  it('runs every scenario at a tiny size and writes the JSON report and the docs tables', async () => {
    const out = tempDir('pgbak-bench-smoke-');
    onTestFinished(() => rmSync(out, { recursive: true, force: true }));
    const docs = join(out, 'performance.md');
    const tsx = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
    await execFileAsync(tsx, ['bench/bench.ts', '--size', '5MB', '--reps', '1', '--out', out, '--docs', docs], {
      cwd: REPO_ROOT,
      timeout: 170_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const files = readdirSync(out).filter((f) => f.endsWith('.json'));
    expect(files).toHaveLength(1);
    const report = JSON.parse(readFileSync(join(out, files[0]!), 'utf8'));
    expect(report).toMatchObject({ format: 'pgbak-bench', version: 1, options: { reps: 1 } });
    expect(report.dataset.bytes).toBeGreaterThan(0);
    expect(report.dataset.dumpZ0Bytes).toBeGreaterThan(0);
    expect(Object.keys(report.scenarios).sort()).toEqual(
      ['a', 'b', 'c', 'd', 'e', 'e_local', 'e_counts', 'f_bare', 'f_pgbak', 'zstd_T0', 'zstd_T1'].sort(),
    );
    for (const [id, s] of Object.entries<{ runs: unknown[]; median: Record<string, number | null> }>(report.scenarios)) {
      expect(s.runs, id).toHaveLength(1);
      expect(s.median.wallMs, id).toBeGreaterThan(0);
      if (id !== 'a') expect(s.median.outputBytes, id).toBeGreaterThan(0);
      if (existsSync('/usr/bin/time')) expect(s.median.cpuMs, id).toBeGreaterThanOrEqual(0);
    }
    for (const id of ['d', 'e', 'f_pgbak']) expect(report.scenarios[id].median.pgbakMaxRssKiB, id).toBeGreaterThan(0);
    // A backup's own time (its durationMs) is kept beside the wall time of the command around it.
    for (const id of ['d', 'e', 'e_local', 'e_counts']) {
      const run = report.scenarios[id].runs[0] as { wallMs: number; steps: { backup: number } };
      expect(run.steps.backup, id).toBeGreaterThan(0);
      expect(run.steps.backup, id).toBeLessThan(run.wallMs);
    }
    for (const r of ['e_local:backup/zstd_T0', 'e:backup/zstd_T0']) expect(report.ratios[r], r).toBeGreaterThan(0);
    // The servers' CPU is measured with every run: eleven dumps and restores cost the PostgreSQL server some.
    const servers = Object.values<{ runs: { serverCpuMs: Record<string, number> }[] }>(report.scenarios).map((s) => s.runs[0]!.serverCpuMs);
    for (const cpu of servers) expect(Object.keys(cpu).sort()).toEqual(['postgres', 's3']);
    expect(servers.reduce((sum, cpu) => sum + cpu.postgres!, 0)).toBeGreaterThan(0);
    for (const r of ['d/b', 'd/c', 'e/a', 'f_pgbak/f_bare']) expect(report.ratios[r], r).toBeGreaterThan(0);
    expect(report.targets.length).toBeGreaterThanOrEqual(6);
    const md = readFileSync(docs, 'utf8');
    expect(md).toContain('<!-- bench:results:begin -->');
    expect(md).toContain('| f_pgbak |');
    expect(md).toContain("| ratio or target (wall time medians) | value | median of each repetition's ratio |");
    expect(md).toMatch(/\| \(e_local\)'s backup alone \(pgbak's durationMs\) \/ bare pg_dump \\\| zstd -T0 \| \d+\.\d\d \| \d+\.\d\d \|/);
    expect(md).toContain('<!-- bench:memory:begin -->');
    expect(md).toMatch(/Cores kept busy \(all CPU[^)]*\): zstd_T0 \d\.\d\d, e_local \d\.\d\d, e \d\.\d\d, d \d\.\d\d, of \d+/);
  }, 180_000);
});
