import { UsageError } from '../../errors/index.js';
import { formatBytes, formatDuration } from '../../model/human-units.js';
import type { CommandOutcome } from '../outcome.js';
import type { WalFlags } from './wal-common.js';

interface PitrFlags extends WalFlags {
  latest?: boolean | undefined;
  time?: string | undefined;
  json?: boolean | undefined;
  target?: string | undefined;
  targetEnv?: string | undefined;
  archive?: boolean | undefined;
}

/** `pgbak restore --time T | --latest --pgdata DIR`: a base backup into DIR, set up to recover from the WAL archive. */
export async function runPitrRestore(name: string | undefined, flags: PitrFlags): Promise<CommandOutcome> {
  if (flags.pgdata === undefined)
    throw new UsageError('--time needs --pgdata DIR: point-in-time recovery restores a whole cluster into a new data directory');
  if (flags.target !== undefined || flags.targetEnv !== undefined)
    throw new UsageError('--pgdata restores a whole cluster: --target is for dumps');
  let time: Date | undefined;
  if (flags.time !== undefined) {
    const ms = Date.parse(flags.time);
    if (Number.isNaN(ms)) throw new UsageError(`--time ${flags.time}: not a time (use ISO 8601 with a zone, e.g. 2026-12-05T17:59:00Z)`);
    time = new Date(ms);
  }
  const [{ loadWalJob }, { restorePitr }, { stopOnSignals }] = await Promise.all([
    import('./wal-common.js'),
    import('../../api/restore-pitr.js'),
    import('../signals.js'),
  ]);
  const { job, logger } = await loadWalJob(flags);
  const stop = stopOnSignals(logger, 'restore');
  try {
    const r = await restorePitr({
      job,
      pgdata: flags.pgdata,
      time,
      latest: flags.latest,
      name,
      pgbakCommand: [process.execPath, process.argv[1]!],
      archive: flags.archive,
      logger,
      signal: stop.signal,
    });
    if (!flags.json) {
      process.stdout.write(
        [
          `restore ok: base backup ${r.backup} (${formatBytes(r.sizeBytes)}, from ${r.source}) → ${r.pgdata} in ${formatDuration(r.durationMs)}`,
          `  recovery to ${r.targetTime ?? 'the end of the WAL archive'}, then promote; restore_command reads ${r.envFile}`,
          `  start it: pg_ctl -D ${r.pgdata} start (as the server user; check port and paths in its postgresql.conf first)`,
        ].join('\n') + '\n',
      );
    }
    return { exitCode: 0, errors: [], json: { results: [r] } };
  } finally {
    stop.dispose();
  }
}
