import { Option, type Command } from '@commander-js/extra-typings';
import { ExitCode } from '../../errors/index.js';
import { addCommonOptions, addExamples } from '../options.js';
import type { OutcomeSlot } from '../outcome.js';
import type { WalFlags } from './wal-common.js';

/**
 * `pgbak wal-fetch %f %p` (restore_command). Exit 1 only when the archive answered that the file
 * is not there (the end of the archive, or a timeline's history that does not exist); any other
 * failure exits 126, which PostgreSQL treats as fatal: recovery stops rather than ending (and
 * promoting) at an earlier point than the archive holds.
 */
export function registerWalFetch(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('wal-fetch')
    .description(
      `restore_command: fetch, decrypt, decompress and check one archived WAL file into %p; exit 1 when it is not archived, ${ExitCode.walFetchFailed} on any other failure (recovery stops)`,
    )
    .argument('<name>', 'the file PostgreSQL wants: %f')
    .argument('<path>', 'where to write it: %p');
  cmd.addOption(new Option('--pgdata <dir>', 'the data directory being recovered (default: the working directory)'));
  cmd.addOption(new Option('--prefetch-worker', 'run as the prefetch worker from segment <name> (started by restore)').hideHelp());
  cmd.addOption(new Option('--restore-pid <pid>', 'the prefetch worker: the restore that started it').hideHelp());
  cmd.addOption(new Option('--until <time>', 'the prefetch worker: the recovery target time').hideHelp());
  cmd.addOption(new Option('--prefetch-count <n>', 'the prefetch worker: segments ahead at most (tests)').hideHelp());
  addCommonOptions(cmd, { withAll: false }).action(
    async (
      name: string,
      path: string,
      flags: WalFlags & { prefetchWorker?: boolean; restorePid?: string; until?: string; prefetchCount?: string },
    ) => {
      try {
        const { loadWalJob } = await import('./wal-common.js');
        if (flags.prefetchWorker) {
          const { runPrefetchWorker } = await import('../../api/wal-prefetch-worker.js');
          const { pushAheadSignature } = await import('../../api/wal-push-ahead.js');
          const { job, logger } = await loadWalJob(flags);
          const until = flags.until ? new Date(flags.until) : undefined;
          const limits = flags.prefetchCount ? { count: Math.max(1, Number.parseInt(flags.prefetchCount, 10) || 1) } : undefined;
          await runPrefetchWorker({
            job,
            pgdata: flags.pgdata ?? '.',
            signature: pushAheadSignature(flags),
            from: name,
            until,
            limits,
            logger,
            restorePid: flags.restorePid ? Number(flags.restorePid) : undefined,
          });
          slot.outcome = { exitCode: ExitCode.ok, errors: [] };
          return;
        }
        const { walFetch, WalNotArchivedError, WAL_PREFETCH } = await import('../../api/wal-fetch.js');
        const { pushAheadSignature } = await import('../../api/wal-push-ahead.js');
        const { job, logger } = await loadWalJob(flags);
        const prefetch = { ...WAL_PREFETCH, signature: pushAheadSignature(flags) };
        try {
          await walFetch({ job, name, path, pgdata: flags.pgdata, logger, prefetch });
        } catch (err) {
          if (!(err instanceof WalNotArchivedError)) throw err;
          logger.info(err.message);
          slot.outcome = { exitCode: ExitCode.failure, errors: [] };
          return;
        }
        slot.outcome = { exitCode: ExitCode.ok, errors: [] };
      } catch (err) {
        slot.outcome = { exitCode: ExitCode.walFetchFailed, errors: [err] };
      }
    },
  );
  addExamples(cmd, [
    ['pgbak wal-fetch --env-file /etc/pgbak/wal.env %f %p', 'restore_command (`pgbak restore --pgdata` writes it for you)'],
  ]);
}
