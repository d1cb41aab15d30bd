import { ExitCode, InterruptedError } from '../errors/index.js';
import { formatDuration } from '../model/human-units.js';
import type { Logger } from '../logging/logger.js';
import { releaseHeldLocks } from '../api/held-locks.js';
import { renderError } from './render.js';

/** After SIGTERM/SIGINT, how long a command may clean up before it exits anyway. */
export const STOP_GRACE_MS = 5_000;

/** A command's stop: see {@link stopOnSignals}. */
export interface StopSignals {
  /** Aborts (with an InterruptedError) on the first SIGTERM or SIGINT. */
  readonly signal: AbortSignal;
  /** Remove the handlers (the command is done). */
  dispose(): void;
}

/**
 * The one SIGTERM/SIGINT/SIGHUP handling of every command but the daemon. The first signal aborts
 * `signal`, which every S3 request and child process of the command honours, so the command
 * cleans up and exits 130. If it has not finished `graceMs` later (a request that ignores the
 * abort, cleanup on a server that does not answer), or on a second signal, it exits 130 at once,
 * after releasing its locks: a stop must never hang, whatever S3 does.
 */
export function stopOnSignals(logger: Logger, what: string, options: { graceMs?: number } = {}): StopSignals {
  const graceMs = options.graceMs ?? STOP_GRACE_MS;
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      logger.warn(`received ${sig} again: exiting without waiting for the cleanup`);
      exitInterrupted(`${sig} twice`, 'the cleanup was cut short: `pgbak list` shows anything left without its manifest');
    }
    logger.warn(`received ${sig}: stopping the ${what}, cleaning up`);
    controller.abort(new InterruptedError(`interrupted by ${sig}`));
    timer = setTimeout(() => {
      logger.error(`the ${what} did not stop within ${formatDuration(graceMs)} of ${sig}: exiting anyway`);
      exitInterrupted(
        `${sig}; cleanup did not finish within ${formatDuration(graceMs)}`,
        'S3 may not be answering (STORAGE_TIMEOUT bounds each request); `pgbak list` shows anything left without its manifest',
      );
    }, graceMs);
    timer.unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The terminal closed: children run in their own sessions (child-stage.ts) and no longer get its
  // SIGHUP, so pgbak stops them and cleans up as on SIGTERM instead of dying with them left running.
  process.on('SIGHUP', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
    },
  };
}

/**
 * Exit 130 now, with the one-line cause and hint every failure gets: the command is stuck, so
 * this cannot wait for main to render its outcome.
 */
function exitInterrupted(cause: string, hint: string): never {
  releaseHeldLocks();
  renderError(new InterruptedError(`interrupted (${cause})`, { hint }));
  process.exit(ExitCode.interrupted);
}
