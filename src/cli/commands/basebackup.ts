import { Option, type Command } from '@commander-js/extra-typings';
import { ExitCode, PartialError } from '../../errors/index.js';
import { formatBytes, formatDuration } from '../../model/human-units.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';

interface BaseBackupFlags extends CommonFlags {
  json?: boolean;
  archiveTimeout?: string;
}

/** `pgbak basebackup`: a physical base backup of the whole cluster, for point-in-time recovery. */
export function registerBasebackup(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('basebackup')
    .description(
      'point-in-time recovery: a base backup of the whole cluster (pg_basebackup, tar) compressed, encrypted and stored locally and in the bucket; its manifest is written once every WAL segment it needs is archived',
    )
    .option('--json', 'print the result as JSON on stdout');
  cmd.addOption(
    new Option('--archive-timeout <duration>', 'how long to wait for the WAL of the backup to reach the archive').default('60s'),
  );
  addCommonOptions(cmd, { withAll: false }).action(async (flags: BaseBackupFlags) => {
    slot.outcome = await runCommand('basebackup', flags.json, () => runBasebackup(flags));
  });
  addExamples(cmd, [
    ['pgbak basebackup', 'one base backup of the cluster DATABASE_URL points at'],
    ['pgbak basebackup --job shop --json', 'the same for one job, as JSON'],
  ]);
}

async function runBasebackup(flags: BaseBackupFlags): Promise<CommandOutcome> {
  const [{ basebackup }, { stopOnSignals }, { parseDuration }] = await Promise.all([
    import('../../api/basebackup.js'),
    import('../signals.js'),
    import('../../config/parsers.js'),
  ]);
  const ctx = await loadContext(flags, { openLogFile: true });
  const job = ctx.jobs[0]!;
  const stop = stopOnSignals(ctx.logger, 'basebackup');
  try {
    const result = await basebackup({
      job,
      logger: ctx.logger,
      signal: stop.signal,
      archiveTimeoutMs: parseDuration(flags.archiveTimeout ?? '60s'),
    });
    const m = result.manifest;
    await (await import('../../api/wal-metrics.js')).writeWalTextfile(job, ctx.logger);
    if (!flags.json) {
      process.stdout.write(
        `base backup ${m.name}: ${formatBytes(m.artifact.size)} in ${formatDuration(m.durationMs)}, WAL ${m.startLsn} … ${m.stopLsn} on timeline ${m.timeline} archived${result.remoteError ? '; the upload FAILED (kept locally)' : ''}\n`,
      );
    }
    const errors = result.remoteError
      ? [
          new PartialError(`base backup ${m.name} is kept locally, but the upload failed: ${result.remoteError.message}`, {
            hint: result.remoteError.hint,
          }),
        ]
      : [];
    return { exitCode: errors.length ? ExitCode.partial : ExitCode.ok, errors, json: { results: [{ job: job.name, ...m }] } };
  } finally {
    stop.dispose();
  }
}
