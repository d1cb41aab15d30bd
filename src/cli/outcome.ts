import { AppError, ExitCode } from '../errors/index.js';
import { shownValue } from './shown.js';

/**
 * What a command hands back to `cli/main.ts`: its exit code and the errors to show. Commands never
 * print `pgbak: error:` lines or set `process.exitCode`; main renders `errors` in order, once,
 * through `renderError` (one line with its cause, a hint, redacted) and exits with `exitCode`.
 * Anything a command throws is rendered the same way.
 */
export interface CommandOutcome {
  readonly exitCode: number;
  /** AppErrors, usually; anything else renders as an internal error. */
  readonly errors: readonly unknown[];
  /**
   * The `--json` document's items (one per job, backup or database: see docs/json.md) and any
   * top-level fields beside them; absent for a command that printed no result.
   */
  readonly json?: { readonly results: readonly unknown[]; readonly extra?: Record<string, unknown> } | undefined;
  /**
   * The `error` of the `--json` document when the command fails without an error for main to
   * render (status, verify: their report already said why on stdout/stderr).
   */
  readonly jsonError?: AppError | undefined;
}

/** Holds the outcome of the one command commander ran (set by the action, read by main). */
export interface OutcomeSlot {
  outcome: CommandOutcome | undefined;
}

export const ok: CommandOutcome = { exitCode: 0, errors: [] };

/** An outcome with this exit code and, optionally, the errors that explain it. */
export function outcomeOf(exitCode: number, errors: readonly unknown[] = []): CommandOutcome {
  return { exitCode, errors };
}

/** The version of the `--json` envelope (docs/json.md); raised only when a field changes meaning or goes. */
export const JSON_SCHEMA_VERSION = 1;

/** The `error` object of every `--json` document. */
export interface JsonError {
  readonly code: string;
  readonly message: string;
  readonly hint: string | null;
  readonly exitCode: number;
}

/**
 * Any error as the `--json` error object (an unexpected error is `internal`). Not redacted here:
 * the whole document is, once, when it is printed (writeJsonFlushed).
 */
export function jsonErrorOf(err: unknown): JsonError {
  if (err instanceof AppError) return { code: err.code, message: err.message, hint: err.hint ?? null, exitCode: err.exitCode };
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'internal', message, hint: 'this is a bug in pgbak; please report it', exitCode: ExitCode.failure };
}

/** The `--json` document of an outcome: `{ schemaVersion, command, ok, error?, …extra, results }`. */
export function envelopeOf(command: string, outcome: CommandOutcome, defaults: Record<string, unknown> = {}): Record<string, unknown> {
  const failed = outcome.exitCode !== ExitCode.ok;
  const cause = outcome.errors[0] ?? outcome.jsonError;
  const error = failed
    ? jsonErrorOf(cause ?? new AppError('failed', `pgbak ${command} failed`, { exitCode: outcome.exitCode }))
    : undefined;
  // The exit code is the command's, whatever the first error's own code says.
  return {
    schemaVersion: JSON_SCHEMA_VERSION,
    command,
    ok: !failed,
    ...(error ? { error: { ...error, exitCode: outcome.exitCode } } : {}),
    ...defaults,
    ...outcome.json?.extra,
    results: outcome.json?.results ?? [],
  };
}

/**
 * Print a JSON document and wait until it is handed to the OS: bin/pgbak ends with process.exit,
 * which would cut a long document written to a pipe (stdout is asynchronous there).
 */
function writeJsonFlushed(value: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(`${JSON.stringify(shownValue(value), null, 2)}\n`, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Run a command's body; with `--json`, print its envelope on stdout, on success and on failure
 * alike (a thrown error becomes `ok: false` with `error` and empty `results`, then goes on to main,
 * which renders it on stderr as usual). `defaults` are the command's top-level fields (`dryRun`…),
 * there even when the body threw before it could say them.
 */
export async function runCommand(
  command: string,
  json: boolean | undefined,
  body: () => Promise<CommandOutcome>,
  defaults: Record<string, unknown> = {},
): Promise<CommandOutcome> {
  // A one-shot command is one run: a silent S3 server is waited for once in it (the daemon and
  // the WAL commands, whose runs and workers must ask again, do not come through here).
  (await import('../api/command-run.js')).silenceThisCommand();
  let outcome: CommandOutcome;
  try {
    outcome = await body();
  } catch (err) {
    if (json) {
      const e = jsonErrorOf(err);
      await writeJsonFlushed(envelopeOf(command, { exitCode: e.exitCode, errors: [err] }, defaults));
    }
    throw err;
  }
  if (json) await writeJsonFlushed(envelopeOf(command, outcome, defaults));
  return outcome;
}
