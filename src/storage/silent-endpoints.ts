/**
 * The S3 endpoints that did not answer within STORAGE_TIMEOUT during one run (a backup and the
 * steps after it; a whole-server run's every database): a frozen server is waited for once, not
 * once per request. Without it, a run whose bucket check timed out waited the timeout again for
 * the last-run record, and a whole-server run of N databases waited 2·N times (README, "Nothing
 * waits on S3 forever"). A run makes one and hands it to the storage it opens (openStorage's
 * `silence`); the next run, the daemon's retry included, asks the server again. A one-shot
 * command (`pgbak status`, `list`, `backup` …) is one run as a whole: {@link silenceThisCommand}.
 */
export class SilentEndpoints {
  private readonly since = new Map<string, number>();

  /** Remember that `endpoint` (an origin: `http://host:port`) did not answer in time. */
  mark(endpoint: string): void {
    if (!this.since.has(endpoint)) this.since.set(endpoint, Date.now());
  }

  /** When `endpoint` first did not answer in this run (ms since the epoch), or undefined. */
  silentSince(endpoint: string): number | undefined {
    return this.since.get(endpoint);
  }
}

/** A request not sent: its endpoint did not answer earlier in this run (see {@link SilentEndpoints}). */
export class EndpointSilent extends Error {
  constructor(
    readonly endpoint: string,
    readonly since: number,
  ) {
    super(`${endpoint} did not answer earlier in this run`);
    this.name = 'EndpointSilent';
  }
}

let perCommand: SilentEndpoints | undefined;

/**
 * Make this process's command one run: every storage it opens and every run it makes share one
 * SilentEndpoints (so `pgbak status` of a whole-server job waits for a frozen bucket once, not
 * once a database). The CLI calls it for its one-shot commands, never for the daemon, whose
 * scheduled runs each ask the server again.
 */
export function silenceThisCommand(): void {
  perCommand ??= new SilentEndpoints();
}

/** The command's SilentEndpoints ({@link silenceThisCommand}), or undefined (the daemon, the library). */
export function commandSilence(): SilentEndpoints | undefined {
  return perCommand;
}
