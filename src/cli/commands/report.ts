import { resolve } from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import { ExitCode } from '../../errors/index.js';
import { formatBytes } from '../../model/human-units.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import type { CommandOutcome, OutcomeSlot } from '../outcome.js';

interface ReportFlags extends CommonFlags {
  html: string;
}

/** `pgbak report --html FILE`: the dashboard's overview as one self-contained HTML file. */
export function registerReport(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('report')
    .description(
      "write the daemon dashboard's overview (jobs, backups, size and duration chart, restore tests) as one self-contained HTML file, read from BACKUP_DIR and the bucket",
    )
    .requiredOption('--html <file>', 'the HTML file to write (replaced atomically)');
  addCommonOptions(cmd, { withAll: false }).action(async (flags: ReportFlags) => {
    slot.outcome = await runReport(flags);
  });
  addExamples(cmd, [
    ['pgbak report --html /var/www/backups.html', 'every job of the configuration, for a web server to serve'],
    ['pgbak report --html report.html --job shop', 'one job'],
  ]);
}

async function runReport(flags: ReportFlags): Promise<CommandOutcome> {
  const [{ writeHtmlReport }, { silenceThisCommand }] = await Promise.all([
    import('../../api/dashboard-report.js'),
    import('../../api/command-run.js'),
  ]);
  // One run, as every one-shot command (outcome.ts runCommand): a silent S3 server is asked once.
  silenceThisCommand();
  const ctx = await loadContext(flags, { openLogFile: false, allByDefault: flags.job === undefined });
  const result = await writeHtmlReport({ jobs: ctx.jobs, file: resolve(flags.html), logger: ctx.logger });
  process.stdout.write(
    `report written to ${result.file}: ${result.jobs} job(s), ${result.backups} backup(s), ${formatBytes(result.bytes)}\n`,
  );
  return { exitCode: ExitCode.ok, errors: [] };
}
