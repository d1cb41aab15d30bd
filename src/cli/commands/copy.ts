import type { Command } from '@commander-js/extra-typings';
import type { CopyItem, CopyReport } from '../../api/index.js';
import { formatBytes } from '../../model/human-units.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { transferOutcome } from '../transfer-outcome.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';

interface CopyFlags extends CommonFlags {
  to?: string;
  missing?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

/** `pgbak copy NAME… --to TARGET | --missing --to TARGET`: copy good backups to a target that lacks them. */
export function registerCopy(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('copy')
    .description(
      'copy good backups to a bucket target that lacks them (primary, or the second target): streamed from BACKUP_DIR or another target, checked against the manifest on the way, manifest last',
    )
    .argument('[names...]', 'backup names to copy')
    .option('--to <target>', 'the target to copy to: primary, or the name of the second target (STORAGE_2_NAME, default secondary)')
    .option('--missing', "every good backup of the job's database that the target lacks")
    .option('--dry-run', 'say what would be copied; copy nothing')
    .option('--json', 'print the result as JSON on stdout');
  addCommonOptions(cmd).action(async (names: string[], flags: CopyFlags) => {
    slot.outcome = await runCommand('copy', flags.json, () => runCopy(names, flags), { dryRun: Boolean(flags.dryRun) });
  });
  addExamples(cmd, [
    ['pgbak copy --missing --to secondary --dry-run', 'what the second target lacks'],
    ['pgbak copy --missing --to secondary', 'copy it all, oldest first'],
    ['pgbak copy db_20261201_120000 --to secondary', 'one backup, by name'],
  ]);
}

async function runCopy(names: readonly string[], flags: CopyFlags): Promise<CommandOutcome> {
  const { copy } = await import('../../api/copy.js');
  const { stopOnSignals } = await import('../signals.js');
  const { UsageError } = await import('../../errors/index.js');
  if (!flags.to)
    throw new UsageError('copy to where? give --to TARGET', {
      hint: 'the targets are primary and the second one (STORAGE_2_NAME, default secondary)',
    });
  const ctx = await loadContext(flags, { openLogFile: !flags.dryRun });
  const stop = stopOnSignals(ctx.logger, 'copy');
  const reports: CopyReport[] = [];
  try {
    for (const job of ctx.jobs) {
      const report = await copy({
        job,
        to: flags.to,
        names,
        missing: Boolean(flags.missing),
        dryRun: Boolean(flags.dryRun),
        logger: ctx.logger,
        signal: stop.signal,
      });
      reports.push(report);
      if (!flags.json) process.stdout.write(describe(report));
    }
  } finally {
    stop.dispose();
  }
  const { errors, exitCode } = transferOutcome(
    reports.flatMap((r) => r.items),
    'copy',
  );
  const results = reports.flatMap((r) =>
    r.items.map((i) => ({ job: r.job, database: r.database, to: r.to, ...i, error: i.error ?? null })),
  );
  return { exitCode, errors, json: { results } };
}

function line(i: CopyItem, to: string): string {
  const size = formatBytes(i.sizeBytes);
  switch (i.status) {
    case 'copied':
      return `copied ${i.name} (${size}) from ${i.from} to ${to}`;
    case 'already':
      return `${i.name} is already in ${to}; nothing to do`;
    case 'would-copy':
      return `would copy ${i.name} (${size}) from ${i.from} to ${to}`;
    case 'failed':
      return `FAILED ${i.name}: ${i.error?.message ?? 'copy failed'}`;
  }
}

function describe(r: CopyReport): string {
  if (r.items.length === 0) return `${r.job}: ${r.to} has every good backup of ${r.database}; nothing to copy\n`;
  return r.items.map((i) => `${line(i, r.to)}\n`).join('');
}
