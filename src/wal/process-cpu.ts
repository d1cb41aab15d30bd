import { readFile } from 'node:fs/promises';

/**
 * CPU seconds of this process and of its children it waited for (zstd, gpg), from
 * /proc/self/stat (utime, stime, cutime, cstime in clock ticks of 1/100 s); undefined where there
 * is no /proc.
 */
export async function cpuSecondsOfProcess(): Promise<number | undefined> {
  try {
    const stat = await readFile('/proc/self/stat', 'utf8');
    // The fields after the command name (which may hold spaces) in parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(f[i]), 0);
    return Number.isFinite(ticks) ? ticks / 100 : undefined;
  } catch {
    return undefined;
  }
}
