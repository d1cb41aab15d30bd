import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { procStatTicks } from '../src/wal/process-cpu.js';

/** One timed command: wall clock, CPU of the whole process tree, peak memory. */
export interface Measurement {
  readonly wallMs: number;
  /** user + sys of the command and every child it waited for (from /usr/bin/time); null without it. */
  readonly cpuMs: number | null;
  /** Largest RSS of any process in the tree (ru_maxrss), KiB; null without /usr/bin/time. */
  readonly treeMaxRssKiB: number | null;
  /** For a node command run with the probe: that node process's own peak RSS (KiB) and CPU. */
  readonly nodeMaxRssKiB: number | null;
  readonly nodeCpuMs: number | null;
  /** 1-minute load average when the command started (other work on the machine shows here). */
  readonly load1: number;
  /** CPU the servers given to {@link watchServers} spent while the command ran (PostgreSQL, S3), by name; null when none. */
  readonly serverCpuMs: Readonly<Record<string, number>> | null;
  readonly stdout: string;
}

export interface CommandSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** Where stdout goes: captured (default), discarded (/dev/null), or written to a file. */
  readonly stdout?: 'capture' | 'ignore' | { file: string };
  /** The command is a node program (bin/pgbak, run as installed): preload, through NODE_OPTIONS, the probe that reports its own peak RSS and CPU. */
  readonly nodeProbe?: boolean;
  readonly cwd?: string;
}

const TIME_BIN = '/usr/bin/time';
const PROBE = join(fileURLToPath(new URL('.', import.meta.url)), 'rss-probe.mjs');

/** Whether GNU time is available (CPU time and tree RSS); without it only wall time is measured. */
export const haveGnuTime = existsSync(TIME_BIN);

let current: ChildProcess | undefined;

/** The servers whose CPU each measurement also records (see {@link watchServers}). */
let servers: readonly { readonly name: string; readonly pid: number }[] = [];

/**
 * Also record, for every measurement from now on, the CPU these server processes spend while the
 * command runs: PostgreSQL's postmaster (its backends are its children) and the S3 server. On a
 * machine whose cores the bare pipe already fills, every CPU second a command adds, the servers'
 * included, shows in its wall time; GNU time sees only the command's own tree.
 */
export function watchServers(list: readonly { readonly name: string; readonly pid: number | undefined }[]): void {
  servers = list.filter((s): s is { name: string; pid: number } => s.pid !== undefined);
}

/** The pid of a running cluster's postmaster (the first line of postmaster.pid); undefined when unreadable. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** user + sys of a process and of its children, reaped or not (ms; 0 when it is gone or not Linux). */
export function processTreeCpuMs(pid: number): number {
  const read = (p: string) => {
    try {
      return readFileSync(`/proc/${p}/stat`, 'utf8');
    } catch {
      return undefined;
    }
  };
  const root = read(String(pid));
  if (root === undefined) return 0;
  const r = procStatTicks(root);
  let ticks = r.own + r.children;
  // Children still running (or exited and not yet reaped), and theirs: PostgreSQL's backends.
  const byParent = new Map<number, { pid: number; own: number; children: number }[]>();
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const text = read(p);
    if (text === undefined) continue;
    const t = procStatTicks(text);
    const list = byParent.get(t.ppid) ?? [];
    list.push({ pid: Number(p), own: t.own, children: t.children });
    byParent.set(t.ppid, list);
  }
  const walk = (parent: number) => {
    for (const c of byParent.get(parent) ?? []) {
      ticks += c.own + c.children;
      walk(c.pid);
    }
  };
  walk(pid);
  return ticks * TICK_MS;
}

const serverCpu = () => Object.fromEntries(servers.map((s) => [s.name, processTreeCpuMs(s.pid)]));

/** Kill the command being measured (Ctrl-C). */
export function killCurrent(): void {
  if (current && current.exitCode === null && current.signalCode === null) current.kill('SIGTERM');
}

/**
 * Run one command and measure it. CPU time is the children's user+sys reported by GNU time,
 * which covers every process the command waited for (pg_dump, gpg, zstd under pgbak), but not
 * the servers it talks to (PostgreSQL, MinIO): those are sampled apart ({@link watchServers}).
 * Fails when the command exits non-zero.
 */
export async function measure(spec: CommandSpec, scratch: string): Promise<Measurement> {
  const timeFile = join(scratch, `time-${process.pid}-${Date.now()}.txt`);
  const probeFile = join(scratch, `probe-${process.pid}-${Date.now()}.json`);
  const args = [...spec.args];
  const [cmd, argv] = haveGnuTime ? [TIME_BIN, ['-f', '%e %U %S %M', '-o', timeFile, '--', spec.command, ...args]] : [spec.command, args];
  const out = spec.stdout ?? 'capture';
  const fd = typeof out === 'object' ? openSync(out.file, 'w', 0o600) : undefined;
  const env = spec.nodeProbe ? { ...spec.env, BENCH_PROBE_FILE: probeFile, NODE_OPTIONS: `--import "${PROBE}"` } : spec.env;
  const load1 = loadavg()[0] ?? 0;
  const serversBefore = serverCpu();
  const started = performance.now();
  const child = spawn(cmd, argv, { env, cwd: spec.cwd, stdio: ['ignore', fd ?? (out === 'ignore' ? 'ignore' : 'pipe'), 'pipe'] });
  current = child;
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, signal) => resolve(signal ? -1 : c));
  });
  const wallMs = performance.now() - started;
  current = undefined;
  // A backend that ended with the command is reaped (and counted) by its postmaster within a few ms.
  if (servers.length > 0) await new Promise((r) => setTimeout(r, 20));
  const serversAfter = serverCpu();
  if (fd !== undefined) closeSync(fd);
  let time: number[] | undefined;
  if (haveGnuTime && existsSync(timeFile)) {
    const line = readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
    time = line.split(/\s+/).map(Number);
    rmSync(timeFile, { force: true });
  }
  let probe: { maxRSS: number; userCPUTime: number; systemCPUTime: number } | undefined;
  if (existsSync(probeFile)) {
    probe = JSON.parse(readFileSync(probeFile, 'utf8'));
    rmSync(probeFile, { force: true });
  }
  if (code !== 0)
    throw new Error(`${spec.command} ${spec.args.join(' ')} failed (exit ${code}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`);
  return {
    wallMs,
    cpuMs: time && time.length >= 3 ? Math.round((time[1]! + time[2]!) * 1000) : null,
    treeMaxRssKiB: time && time.length >= 4 ? time[3]! : null,
    nodeMaxRssKiB: probe ? probe.maxRSS : null,
    nodeCpuMs: probe ? Math.round((probe.userCPUTime + probe.systemCPUTime) / 1000) : null,
    load1,
    serverCpuMs:
      servers.length > 0 ? Object.fromEntries(servers.map((s) => [s.name, serversAfter[s.name]! - serversBefore[s.name]!])) : null,
    stdout,
  };
}
