import type { Command } from '@commander-js/extra-typings';
import type { InitBucketReport } from '../../api/index.js';
import type { JobConfig } from '../../config/job.js';
import { ExitCode, InterruptedError, StorageError } from '../../errors/index.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { out } from '../style.js';

interface InitFlags extends CommonFlags {
  lifecycle?: boolean;
  objectLock?: boolean;
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
    .option('--object-lock', 'create the bucket with S3 Object Lock and versioning (for STORAGE_OBJECT_LOCK; docs/storage.md)')
    .option('--json', 'print the report as JSON on stdout (docs/json.md)');
  addCommonOptions(cmd).action(async (flags: InitFlags) => {
    slot.outcome = await runCommand('init', flags.json, () => runInitCommand(flags));
  });
  addExamples(cmd, [
    ['pgbak init', 'create the bucket if missing and prove write, read, list and delete'],
    ['pgbak init --lifecycle', 'also install the expiry rule (read the warning it prints first)'],
    ['pgbak init --object-lock', 'a bucket whose backups nobody can delete before their date (STORAGE_OBJECT_LOCK)'],
    ['pgbak init --all --json', 'every job of the config file, as JSON'],
  ]);
}

/** A job's bucket report as `init --json` prints it: `path` for its s3:// URL, checks as `{check, ok, detail}`. */
function initJson(job: string, r: InitBucketReport): Record<string, unknown> {
  const { location, checks, ...rest } = r;
  return { job, ...rest, path: location, checks: checks.map(({ name, ...c }) => ({ check: name, ...c })) };
}

async function runInitCommand(flags: InitFlags): Promise<CommandOutcome> {
  const { initBucket } = await import('../../api/init-bucket.js');
  const { stopOnSignals } = await import('../signals.js');
  const ctx = await loadContext(flags, { openLogFile: true });
  const reports: Record<string, unknown>[] = [];
  let failed = false;
  const stop = stopOnSignals(ctx.logger, 'bucket check');
  try {
    for (const job of ctx.jobs) {
      const report = await initBucket(job, { signal: stop.signal, lifecycle: flags.lifecycle, objectLock: flags.objectLock });
      reports.push(initJson(job.name, report));
      failed ||= !report.ok;
      for (const w of report.warnings) ctx.logger.warn(w);
      if (!flags.json) process.stdout.write(describe(job, report));
    }
  } finally {
    stop.dispose();
  }
  const json = { results: reports };
  if (stop.signal.aborted)
    return { exitCode: ExitCode.interrupted, errors: [new InterruptedError('interrupted', { hint: undefined })], json };
  if (failed) {
    const e = new StorageError('storage-access', 'the bucket does not allow every operation pgbak needs (see the failed checks)', {
      hint: 'grant the access key s3:PutObject, GetObject, ListBucket and DeleteObject on the bucket',
    });
    return { exitCode: e.exitCode, errors: [e], json };
  }
  return { exitCode: ExitCode.ok, errors: [], json };
}

function describe(job: JobConfig, report: InitBucketReport): string {
  return (
    [
      `init ${report.location}: bucket ${report.bucket === 'created' ? 'created' : 'already exists'}`,
      ...report.checks.map((c) => `  ${c.ok ? out().ok('[ok]') : out().fail('[FAIL]')} ${c.name}${c.detail ? `: ${c.detail}` : ''}`),
      ...(report.lifecycle === 'installed'
        ? [`  lifecycle rule installed: expire ${job.s3?.prefix} after ${job.retention.days} days, abort incomplete uploads after 1 day`]
        : []),
      ...(report.objectLock ? ['  Object Lock and versioning enabled'] : []),
      ...report.warnings.map((w) => `  warning: ${w}`),
    ].join('\n') + '\n'
  );
}
