import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { processTreeCpuMs } from '../../bench/measure.js';

/** The bench counts a server's CPU with its children's, the ones still running and the ones it reaped (PostgreSQL's backends). */
describe('bench: processTreeCpuMs', () => {
  it("counts a child's CPU while it runs and after its parent reaped it", async () => {
    // A parent (bash) whose child burns ~0.4 s of CPU, then exits; the parent then sleeps on.
    const parent = spawn(
      'bash',
      ['-c', 'sh -c \'end=$(( $(date +%s%N) + 400000000 )); while [ "$(date +%s%N)" -lt "$end" ]; do :; done\'; echo done; sleep 30'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    onTestFinished(() => void parent.kill('SIGKILL'));
    const before = processTreeCpuMs(parent.pid!);
    await sleep(200);
    const during = processTreeCpuMs(parent.pid!); // the child still runs: counted as a child
    await new Promise((resolve) => parent.stdout!.once('data', resolve)); // the child ended and bash reaped it
    await sleep(50);
    const after = processTreeCpuMs(parent.pid!);
    expect(during - before).toBeGreaterThan(50);
    // date(1) runs as grandchildren too; whatever they spent is in it. At least most of the 0.4 s:
    expect(after - before).toBeGreaterThanOrEqual(250);
    expect(after).toBeGreaterThanOrEqual(during);
    expect(processTreeCpuMs(2 ** 22 + 12345)).toBe(0); // no such process
  });
});
