// Preloaded into a measured node process (`node --import bench/rss-probe.mjs …`): when the process
// exits, write its own peak RSS (KiB) and CPU time (µs) to $BENCH_PROBE_FILE for the bench.
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_PROBE_FILE;
if (file) {
  delete process.env.BENCH_PROBE_FILE; // not inherited by the children (pg_dump, gpg)
  process.on('exit', () => {
    const { maxRSS, userCPUTime, systemCPUTime } = process.resourceUsage();
    writeFileSync(file, JSON.stringify({ maxRSS, userCPUTime, systemCPUTime }));
  });
}
