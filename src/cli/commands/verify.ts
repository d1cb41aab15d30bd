import type { Command } from '@commander-js/extra-typings';
import { verify, combinedExitCode, recordRestoreTests, type BackupVerification } from '../../api/index.js';
import { ExitCode, UsageError } from '../../errors/index.js';
import { loadContext, writeJson, type CommonFlags } from '../context.js';
import { addCommonOptions } from '../options.js';
import { outcomeOf, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { stopOnSignals } from '../signals.js';
import { formatDuration } from '../../model/human-units.js';
import { out } from '../style.js';

interface VerifyFlags extends CommonFlags {
  latest?: boolean;
  restoreTest?: boolean;
  json?: boolean;
}

/** `pgbak verify`: check copies against their manifests, optionally by a test restore. */
export function registerVerify(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('verify')
    .description(
      'check every copy (local and remote) against its manifest; --restore-test also restores into a scratch database and checks tables and row counts',
    )
    .argument('[name]', 'backup name (default: the newest backup)')
    .option('--latest', 'verify the newest backup (the default)')
    .option('--all', 'verify every backup of the database (of every job, unless --job is given)')
    .option('--restore-test', 'restore into a scratch database (created and dropped; VERIFY_DATABASE_URL or the same server) and check it')
    .option('--json', 'print the results as JSON on stdout');
  // The common options, except --all, which here means every backup.
  addCommonOptions(cmd, { withAll: false }).action(async (name: string | undefined, flags: VerifyFlags) => {
    slot.outcome = await runVerifyCommand(name, flags);
  });
}

async function runVerifyCommand(name: string | undefined, flags: VerifyFlags): Promise<CommandOutcome> {
  const picked = [name !== undefined, Boolean(flags.latest), Boolean(flags.all)].filter(Boolean).length;
  if (picked > 1) throw new UsageError('give one of NAME, --latest or --all');
  const ctx = loadContext({ ...flags, all: undefined }, { openLogFile: true, allByDefault: Boolean(flags.all) && flags.job === undefined });
  if (name !== undefined && ctx.jobs.length > 1) throw new UsageError('a backup NAME belongs to one job: choose it with --job NAME');
  const controller = stopOnSignals(ctx.logger, 'verification');
  const results: BackupVerification[] = [];
  const codes: number[] = [];
  try {
    for (const job of ctx.jobs) {
      const report = await verify({
        job,
        name,
        all: flags.all,
        restoreTest: flags.restoreTest,
        logger: ctx.logger,
        signal: controller.signal,
      });
      results.push(...report.results);
      codes.push(report.exitCode);
      await recordRestoreTests(job.metrics.textfile, { job: job.name, database: job.database }, report.results, ctx.logger);
    }
  } finally {
    controller.dispose();
  }
  if (flags.json) writeJson(results);
  else for (const r of results) process.stdout.write(describe(r));
  if (controller.signal.aborted) return outcomeOf(ExitCode.interrupted);
  return outcomeOf(combinedExitCode(codes));
}

function describe(r: BackupVerification): string {
  const head = r.error
    ? `verify ERROR: ${r.name}: ${r.error.message}${r.error.hint ? ` (hint: ${r.error.hint})` : ''}`
    : `verify ${r.ok ? out().ok('ok') : out().fail('FAILED')}: ${r.name} (${r.kind}, ${formatDuration(r.durationMs)})`;
  const lines = [
    head,
    ...r.checks.map((c) => `  ${c.ok ? out().ok('ok  ') : out().fail('FAIL')} ${c.check}${c.detail ? `: ${c.detail}` : ''}`),
    ...r.problems.map((p) => `  note ${p}`),
  ];
  if (r.recordedIn.length) lines.push(`  recorded in ${r.recordedIn.join(', ')}`);
  return lines.join('\n') + '\n';
}
