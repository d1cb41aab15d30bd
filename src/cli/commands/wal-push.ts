import { Option, type Command } from '@commander-js/extra-typings';
import { AppError, ExitCode } from '../../errors/index.js';
import { addCommonOptions, addExamples } from '../options.js';
import type { OutcomeSlot } from '../outcome.js';
import type { WalFlags } from './wal-common.js';

type PushFlags = WalFlags & { aheadWorker?: boolean; aheadFrom?: boolean };

/**
 * `pgbak wal-push %p` (archive_command). Its exit codes stay at 125 or below: PostgreSQL treats
 * a higher code (or a signal) as fatal to its archiver, while any other failure is retried.
 */
export function registerWalPush(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('wal-push')
    .description(
      "archive_command: compress, encrypt and store one WAL file in the job's WAL archive; exit 0 only once it is stored (the same file already there is success, other content under its name an error)",
    )
    .argument('<path>', 'the file to archive: %p');
  cmd.addOption(new Option('--ahead-worker', 'run as the push-ahead worker (started by wal-push itself)').hideHelp());
  cmd.addOption(new Option('--ahead-from', 'the push-ahead worker starts at <path> itself (a call waits for it)').hideHelp());
  cmd.addOption(new Option('--pgdata <dir>', 'the data directory (default: the working directory, where PostgreSQL runs archive_command)'));
  addCommonOptions(cmd, { withAll: false }).action(async (path: string, flags: PushFlags) => {
    let walJob: Awaited<ReturnType<typeof import('./wal-common.js').loadWalJob>> | undefined;
    try {
      if (flags.aheadWorker) {
        const { pushSettingsSignature } = await import('../../api/wal-push-ahead.js');
        const { loadWalJob } = await import('./wal-common.js');
        const { runPushAheadWorker } = await import('../../api/wal-push-worker.js');
        // Before the settings are read: a file edited in between ends the worker at its first look.
        const signature = await pushSettingsSignature(flags);
        const { job, logger } = await loadWalJob(flags);
        await runPushAheadWorker({
          job,
          path,
          from: flags.aheadFrom === true,
          signature,
          signatureNow: () => pushSettingsSignature(flags),
          logger,
        });
        slot.outcome = { exitCode: ExitCode.ok, errors: [] };
        return;
      }
      // Pushed ahead by an earlier call (same content, same flags): done, before loading anything heavy.
      const { alreadyPushedAhead, pushSettingsSignature } = await import('../../api/wal-push-ahead.js');
      const signature = await pushSettingsSignature(flags);
      if (await alreadyPushedAhead(path, signature)) {
        process.stderr.write(`${new Date().toISOString()} INFO  archived ahead by an earlier wal-push file=${path.split('/').pop()}\n`);
        slot.outcome = { exitCode: ExitCode.ok, errors: [] };
        return;
      }
      const { loadWalJob } = await import('./wal-common.js');
      const { walPush } = await import('../../api/wal-push.js');
      walJob = await loadWalJob(flags);
      const { job, logger } = walJob;
      // The worker: this very command line with --ahead-worker (settings flags only, never a secret).
      const at = process.argv.indexOf('wal-push');
      const workerArgv = [
        process.execPath,
        ...process.execArgv,
        ...process.argv.slice(1, at + 1),
        '--ahead-worker',
        ...process.argv.slice(at + 1),
      ];
      await walPush({ job, path, pgdata: flags.pgdata, logger, pushAhead: { signature, workerArgv } });
      slot.outcome = { exitCode: ExitCode.ok, errors: [] };
    } catch (err) {
      // Counted for `status` and the metrics (pgbak_wal_archive_failures_total), when the settings could be read.
      if (walJob) await (await import('../../api/wal-push-failure.js')).recordWalPushFailure(walJob.job, path, err, walJob.logger);
      const code = err instanceof AppError ? err.exitCode : ExitCode.failure;
      slot.outcome = { exitCode: code > 125 ? ExitCode.failure : code, errors: [err] };
    }
  });
  addExamples(cmd, [
    ['pgbak wal-push --config /etc/pgbak/pgbak.yaml --job shop %p', "archive_command, in postgresql.conf between '…'"],
    ['pgbak wal-push --env-file /etc/pgbak/wal.env %p', 'the settings from a file only the postgres user can read'],
  ]);
}
