import { redact } from '../logging/redact.js';
import { AppError, ConfigError, ExitCode } from '../errors/index.js';
import { TOOL_VERSION } from '../version.js';

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

/** A fixed-width text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
