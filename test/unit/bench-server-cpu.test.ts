import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { processTreeCpuMs } from '../../bench/measure.js';

/** `NmS.SSSSSSs` of the shell's `times` in ms. */
const timesMs = (t: string) => {
  const m = /^(\d+)m([\d.]+)s$/.exec(t);
  if (!m) throw new Error(`not a time of times: ${t}`);
  return Number(m[1]) * 60_000 + Number(m[2]) * 1000;
};

/** The bench counts a server's CPU with its children's, the ones still running and the ones it reaped (PostgreSQL's backends). */
describe('bench: processTreeCpuMs', () => {
  it("counts a child's CPU while it runs and after its parent reaped it", async () => {
    // A parent (bash) whose child (sh) burns a fixed amount of work (~0.3 s of CPU here), prints its
    // own CPU (`times`) and exits; the parent then sleeps on.
    const parent = spawn('bash', ['-c', "sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; times'; sleep 30"], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    onTestFinished(() => void parent.kill('SIGKILL'));
    let out = '';
    parent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const before = processTreeCpuMs(parent.pid!);
    // While the child runs, its CPU is counted as a child's: seen passing 50 ms before it ends.
    let seenRunning = false;
    while (!out.includes('\n') && !seenRunning) {
      seenRunning = processTreeCpuMs(parent.pid!) - before >= 50 && !out.includes('\n');
      await sleep(10);
    }
    expect(seenRunning).toBe(true);
    while (out.split('\n').length < 3) await sleep(10); // both lines of `times`: the child ended
    await sleep(100); // and bash reaped it
    const after = processTreeCpuMs(parent.pid!);
    const own = timesMs(out.split('\n')[0]!.split(' ')[0]!) + timesMs(out.split('\n')[0]!.split(' ')[1]!);
    expect(own).toBeGreaterThan(50);
    // Once reaped, it is counted through bash's cutime: all of it, to the clock tick (10 ms).
    expect(after - before).toBeGreaterThanOrEqual(own - 20);
    expect(after - before).toBeLessThan(own + 200);
    expect(processTreeCpuMs(2 ** 22 + 12345)).toBe(0); // no such process
  });
});
