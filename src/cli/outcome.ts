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
