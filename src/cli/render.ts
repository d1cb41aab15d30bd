import { AppError, ConfigError, ExitCode } from '../errors/index.js';
import { TOOL_VERSION } from '../version.js';
import { clearLiveLine } from './progress.js';
import { shown } from './shown.js';
import { createStyle, err as stderrStyle, type Style } from './style.js';

const plain = createStyle({ isTTY: false }, { NO_COLOR: '1' });

/** The text of an error as renderError shows it (its first line; a ConfigError's every problem), redacted. */
export function errorText(err: unknown): string {
  if (err instanceof AppError) return shown((err instanceof ConfigError ? err.message : err.message.split('\n')[0]) ?? '');
  return shown(err instanceof Error ? err.message : String(err));
}

/**
 * Print an error once, as one line with its cause and a hint; return its exit code. On stderr a
 * live progress line is taken off first, and on a terminal `pgbak: error:` is red.
 */
export function renderError(err: unknown, write?: (text: string) => void): number {
  const s: Style = write ? plain : stderrStyle();
  if (!write) clearLiveLine();
  const out = write ?? ((t: string) => process.stderr.write(t));
  if (err instanceof AppError) {
    out(`${s.fail('pgbak: error:')} ${errorText(err)}\n`);
    if (err.hint) out(`${s.dim('hint:')} ${shown(err.hint)}\n`);
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  out(`${s.fail(`pgbak: internal error (pgbak ${TOOL_VERSION}):`)} ${shown(e.message)}\n${shown(e.stack ?? '')}\n`);
  out('hint: this is a bug in pgbak; please report it with the lines above\n');
  return ExitCode.failure;
}

/** A fixed-width text table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
