import type { Command } from '@commander-js/extra-typings';
import { initBucket, type InitBucketReport } from '../../api/index.js';
import type { JobConfig } from '../../config/job.js';
import { ExitCode, InterruptedError, StorageError } from '../../errors/index.js';
import { loadContext, writeJson, type CommonFlags } from '../context.js';
import { addCommonOptions } from '../options.js';
import { ok, outcomeOf, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { stopOnSignals } from '../signals.js';
import { out } from '../style.js';

interface InitFlags extends CommonFlags {
  lifecycle?: boolean;
  json?: boolean;
}

/** `pgbak init`: create and check each job's bucket. */
export function registerInit(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('init')
    .description('create the bucket if missing and prove write, read, list and delete there (idempotent)')
    .option(
      '--lifecycle',
      "also install the seed's lifecycle rule (expire backups/ after RETENTION_DAYS days; abort stale uploads after 1 day)",
    )
    .option('--json', 'print the report as JSON on stdout');
  addCommonOptions(cmd).action(async (flags: InitFlags) => {
    slot.outcome = await runInitCommand(flags);
  });
}

async function runInitCommand(flags: InitFlags): Promise<CommandOutcome> {
  const ctx = loadContext(flags, { openLogFile: true });
  const reports = [];
  let failed = false;
  const stop = stopOnSignals(ctx.logger, 'bucket check');
  try {
    for (const job of ctx.jobs) {
      const report = await initBucket(job, { signal: stop.signal, lifecycle: flags.lifecycle });
      reports.push({ job: job.name, ...report });
      failed ||= !report.ok;
      for (const w of report.warnings) ctx.logger.warn(w);
      if (!flags.json) process.stdout.write(describe(job, report));
    }
  } finally {
    stop.dispose();
  }
  if (flags.json) writeJson(reports.length === 1 ? reports[0] : reports);
  if (stop.signal.aborted) return outcomeOf(ExitCode.interrupted, [new InterruptedError('interrupted', { hint: undefined })]);
  if (failed) {
    const e = new StorageError('storage-access', 'the bucket does not allow every operation pgbak needs (see the failed checks)', {
      hint: 'grant the access key s3:PutObject, GetObject, ListBucket and DeleteObject on the bucket',
    });
    return outcomeOf(e.exitCode, [e]);
  }
  return ok;
}

function describe(job: JobConfig, report: InitBucketReport): string {
  return (
    [
      `init ${report.location}: bucket ${report.bucket === 'created' ? 'created' : 'already exists'}`,
      ...report.checks.map((c) => `  ${c.ok ? out().ok('[ok]') : out().fail('[FAIL]')} ${c.name}${c.detail ? `: ${c.detail}` : ''}`),
      ...(report.lifecycle === 'installed'
        ? [`  lifecycle rule installed: expire ${job.s3?.prefix} after ${job.retention.days} days, abort incomplete uploads after 1 day`]
        : []),
      ...report.warnings.map((w) => `  warning: ${w}`),
    ].join('\n') + '\n'
  );
}
