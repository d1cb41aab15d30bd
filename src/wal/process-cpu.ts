import { readFile } from 'node:fs/promises';

/**
 * The CPU fields of a `/proc/<pid>/stat` text, in clock ticks of 1/100 s: the process's own user +
 * sys, and its children's that it waited for (cutime + cstime); and its parent's pid. The fields
 * are counted after the command name, which is in parentheses and may hold spaces.
 */
export function procStatTicks(stat: string): { readonly ppid: number; readonly own: number; readonly children: number } {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
}

/**
 * CPU seconds of this process and of its children it waited for (zstd, gpg), from
 * /proc/self/stat; undefined where there is no /proc.
 */
export async function cpuSecondsOfProcess(): Promise<number | undefined> {
  try {
    const t = procStatTicks(await readFile('/proc/self/stat', 'utf8'));
    const ticks = t.own + t.children;
    return Number.isFinite(ticks) ? ticks / 100 : undefined;
  } catch {
    return undefined;
  }
}
