import type { Command } from '@commander-js/extra-typings';
import type { UploadItem, UploadReport } from '../../api/index.js';
import { formatBytes } from '../../model/human-units.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { transferOutcome } from '../transfer-outcome.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';

interface UploadFlags extends CommonFlags {
  missing?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

/** `pgbak upload NAME… | --missing`: upload the local copy of a partial run's backup later. */
export function registerUpload(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('upload')
    .description(
      'upload good local backups the bucket lacks (what a partial run, exit 3, left): streamed from BACKUP_DIR, checked against the manifest on the way, manifest last',
    )
    .argument('[names...]', 'backup names (or file names) to upload')
    .option('--missing', "every good local backup of the job's database that has no good copy in the bucket")
    .option('--dry-run', 'say what would be uploaded; upload nothing')
    .option('--json', 'print the result as JSON on stdout');
  addCommonOptions(cmd).action(async (names: string[], flags: UploadFlags) => {
    slot.outcome = await runCommand('upload', flags.json, () => runUpload(names, flags), { dryRun: Boolean(flags.dryRun) });
  });
  addExamples(cmd, [
    ['pgbak upload --missing --dry-run', 'what the bucket lacks'],
    ['pgbak upload --missing', 'upload it all, oldest first'],
    ['pgbak upload db_20261201_120000', 'one backup, by name'],
  ]);
}

async function runUpload(names: readonly string[], flags: UploadFlags): Promise<CommandOutcome> {
  const { upload } = await import('../../api/upload.js');
  const { stopOnSignals } = await import('../signals.js');
  const ctx = await loadContext(flags, { openLogFile: !flags.dryRun });
  const stop = stopOnSignals(ctx.logger, 'upload');
  const reports: UploadReport[] = [];
  try {
    for (const job of ctx.jobs) {
      const report = await upload({
        job,
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
    'upload',
  );
  // One result per backup, with its job and database, as every other command's results.
  const results = reports.flatMap((r) => r.items.map((i) => ({ job: r.job, database: r.database, ...i, error: i.error ?? null })));
  return { exitCode, errors, json: { results } };
}

function line(i: UploadItem): string {
  const size = formatBytes(i.sizeBytes);
  switch (i.status) {
    case 'uploaded':
      return `uploaded ${i.name} (${size})${i.completedRun ? '; its partial run is now complete' : ''}`;
    case 'already':
      return `${i.name} is already in the bucket; nothing to do`;
    case 'would-upload':
      return `would upload ${i.name} (${size})`;
    case 'failed':
      return `FAILED ${i.name}: ${i.error?.message ?? 'upload failed'}`;
  }
}

function describe(r: UploadReport): string {
  if (r.items.length === 0) return `${r.job}: the bucket has every good local backup of ${r.database}; nothing to upload\n`;
  return r.items.map((i) => `${line(i)}\n`).join('');
}
