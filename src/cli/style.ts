/**
 * Colour for people at a terminal, none anywhere else. A stream gets colour when it is a TTY
 * (and TERM is not `dumb`); `NO_COLOR` (any non-empty value, https://no-color.org) turns it off,
 * `FORCE_COLOR` (anything but `0`/`false`) turns it on for a pipe. Without colour every function
 * returns its text unchanged, so output read by scripts and cron mail never carries escape codes.
 */
export interface Style {
  readonly enabled: boolean;
  /** Success words: `ok`, `[ok]`. */
  ok(text: string): string;
  /** Warnings and partial results: `PARTIAL`, `WARN`. */
  warn(text: string): string;
  /** Failures: `FAILED`, `[FAIL]`, `PROBLEM`, `pgbak: error:`. */
  fail(text: string): string;
  /** Less important detail: timestamps, hints. */
  dim(text: string): string;
  bold(text: string): string;
}

/** Whether a stream should get colour, given the environment. */
export function colorEnabled(stream: { isTTY?: boolean | undefined }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '') return force !== '0' && force.toLowerCase() !== 'false';
  return Boolean(stream.isTTY) && env.TERM !== 'dumb';
}

const sgr = (open: number, close: number) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`;
const identity = (text: string) => text;

/** The style of one stream (stdout or stderr): colours when {@link colorEnabled}, plain text otherwise. */
export function createStyle(stream: { isTTY?: boolean | undefined }, env: NodeJS.ProcessEnv = process.env): Style {
  const enabled = colorEnabled(stream, env);
  if (!enabled) return { enabled, ok: identity, warn: identity, fail: identity, dim: identity, bold: identity };
  return { enabled, ok: sgr(32, 39), warn: sgr(33, 39), fail: sgr(31, 39), dim: sgr(2, 22), bold: sgr(1, 22) };
}

let stdoutStyle: Style | undefined;
let stderrStyle: Style | undefined;

/** The style of stdout (command results), decided once per process. */
export function out(): Style {
  stdoutStyle ??= createStyle(process.stdout);
  return stdoutStyle;
}

/** The style of stderr (log lines, errors, progress), decided once per process. */
export function err(): Style {
  stderrStyle ??= createStyle(process.stderr);
  return stderrStyle;
}
