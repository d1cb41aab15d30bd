import { describe, expect, it } from 'vitest';
import { cpuSecondsOfProcess, procStatTicks } from '../../src/wal/process-cpu.js';

describe('procStatTicks', () => {
  it('reads ppid, own and children ticks after a command name holding spaces and parentheses', () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime …
    const stat = '4242 (we (ird) name) S 17 4242 4242 0 -1 4194304 120 0 0 0 250 40 700 60 20 0 1 0 1000 1000 100';
    expect(procStatTicks(stat)).toEqual({ ppid: 17, own: 290, children: 760 });
  });

  it("this process: what it reads grows as node's own count of its CPU does", async () => {
    const before = (await cpuSecondsOfProcess())!;
    const start = process.cpuUsage();
    let x = 0;
    // 150 ms of CPU by node's count, however loaded the machine is.
    for (let used = 0; used < 150_000; ) {
      for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + i);
      const u = process.cpuUsage(start);
      used = u.user + u.system;
    }
    expect(x).toBeGreaterThan(0);
    const after = (await cpuSecondsOfProcess())!;
    expect(after - before).toBeGreaterThanOrEqual(0.12); // ticks of 10 ms
  });
});
