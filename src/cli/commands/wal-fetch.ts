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
  addCommonOptions(cmd, { withAll: false }).action(async (name: string, path: string, flags: WalFlags) => {
    try {
      const { loadWalJob } = await import('./wal-common.js');
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
  });
  addExamples(cmd, [
    ['pgbak wal-fetch --env-file /etc/pgbak/wal.env %f %p', 'restore_command (`pgbak restore --pgdata` writes it for you)'],
  ]);
}
