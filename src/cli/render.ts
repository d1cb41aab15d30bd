import { redact } from '../config/redact.js';
import { AppError, ConfigError, ExitCode } from '../errors/index.js';
import { TOOL_VERSION } from '../api/version.js';

/** Print an error once, as one line with its cause and a hint; return its exit code. */
export function renderError(err: unknown, write: (text: string) => void = (t) => process.stderr.write(t)): number {
  if (err instanceof AppError) {
    const lines = err instanceof ConfigError ? err.message : err.message.split('\n')[0];
    write(`pgbak: error: ${redact(lines ?? '')}\n`);
    if (err.hint) write(`hint: ${redact(err.hint)}\n`);
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  write(`pgbak: internal error (pgbak ${TOOL_VERSION}): ${redact(e.message)}\n${redact(e.stack ?? '')}\n`);
  write('hint: this is a bug in pgbak; please report it with the lines above\n');
  return ExitCode.failure;
}

export function formatBytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} min ${Math.round(s - m * 60)} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${m - h * 60} min`;
}

/** A fixed-width text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
