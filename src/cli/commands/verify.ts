import type { Command } from '@commander-js/extra-typings';
import type { BackupVerification } from '../../api/index.js';
import { AppError, ExitCode, InterruptedError, UsageError } from '../../errors/index.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { type CommandOutcome, type OutcomeSlot, runCommand } from '../outcome.js';
import { formatDuration } from '../../model/human-units.js';
import { out } from '../style.js';

interface VerifyFlags extends CommonFlags {
  latest?: boolean;
  every?: boolean;
  database?: string;
  restoreTest?: boolean;
  json?: boolean;
  wal?: boolean;
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
    .option('--every', "verify every backup of the job's database, not only the newest")
    .option('--database <name>', 'whole-server job (BACKUP_DATABASES): only the backups of this database')
    .option('--restore-test', 'restore into a scratch database (created and dropped; VERIFY_DATABASE_URL or the same server) and check it')
    .option('--json', 'print the results as JSON on stdout (docs/json.md)')
    .option(
      '--wal',
      'point-in-time recovery: check the WAL archive has every segment from the oldest base backup to the newest, across timelines',
    );
  addCommonOptions(cmd).action(async (name: string | undefined, flags: VerifyFlags) => {
    slot.outcome = await runCommand('verify', flags.json, async () => {
      if (!flags.wal) return runVerifyCommand(name, flags);
      const { runVerifyWal } = await import('./verify-wal.js');
      return runVerifyWal(flags);
    });
  });
  addExamples(cmd, [
    ['pgbak verify', 'check the newest backup (every copy: size, sha256, pg_restore --list)'],
    ['pgbak verify --latest --restore-test', 'also restore it into a scratch database and compare row counts'],
    ['pgbak verify shop_20260101_120000', 'check that backup'],
    ['pgbak verify --every --all --json', 'every backup of every job of the config file, as JSON'],
    ['pgbak verify --latest --database crm --restore-test', 'whole-server job: the newest backup of database crm, test-restored'],
    ['pgbak verify --wal', 'the WAL archive: no gap from the oldest base backup to the newest segment'],
  ]);
}

async function runVerifyCommand(name: string | undefined, flags: VerifyFlags): Promise<CommandOutcome> {
  const [{ verify, combinedExitCode }, { recordRestoreTests }] = await Promise.all([
    import('../../api/verify.js'),
    import('../../api/verify-metrics.js'),
  ]);
  const { stopOnSignals } = await import('../signals.js');
  const picked = [name !== undefined, Boolean(flags.latest), Boolean(flags.every)].filter(Boolean).length;
  if (picked > 1) throw new UsageError('give one of NAME, --latest or --every');
  const ctx = await loadContext(flags, { openLogFile: true });
  // A whole-server job (BACKUP_DATABASES): each database it backed up (with a NAME, that backup's).
  if (flags.database !== undefined) {
    const { unitsOfDatabase } = await import('../../api/server-jobs.js');
    const units = await unitsOfDatabase(ctx.jobs, flags.database, { discover: false, logger: ctx.logger });
    ctx.jobs.splice(0, ctx.jobs.length, ...units);
  } else if (ctx.jobs.some((j) => j.backup.databases)) {
    const { expandServerJobs } = await import('../../api/server-jobs.js');
    const units = await expandServerJobs(ctx.jobs, { discover: false, logger: ctx.logger });
    const own =
      name === undefined
        ? units
        : units.filter((u) => name.startsWith(`${u.filePrefix}_`) && /^\d{8}_\d{6}/.test(name.slice(u.filePrefix.length + 1)));
    ctx.jobs.splice(0, ctx.jobs.length, ...(own.length ? own : units));
  }
  if (name !== undefined && ctx.jobs.length > 1) throw new UsageError('a backup NAME belongs to one job: choose it with --job NAME');
  const controller = stopOnSignals(ctx.logger, 'verification');
  const results: BackupVerification[] = [];
  const codes: number[] = [];
  try {
    for (const job of ctx.jobs) {
      const report = await verify({
        job,
        name,
        all: flags.every,
        restoreTest: flags.restoreTest,
        pgbakCommand: [process.execPath, process.argv[1]!],
        logger: ctx.logger,
        signal: controller.signal,
      });
      results.push(...report.results.map((r) => ({ job: job.name, ...r })));
      codes.push(report.exitCode);
      await recordRestoreTests(job.metrics.textfile, { job: job.name, database: job.database }, report.results, ctx.logger);
    }
  } finally {
    controller.dispose();
  }
  if (!flags.json) for (const r of results) process.stdout.write(describe(r));
  const json = { results };
  if (controller.signal.aborted)
    return { exitCode: ExitCode.interrupted, errors: [], json, jsonError: new InterruptedError('interrupted') };
  const exitCode = combinedExitCode(codes);
  if (exitCode === ExitCode.ok) return { exitCode, errors: [], json };
  const bad = results.filter((r) => !r.ok);
  const first = bad.find((r) => r.error)?.error;
  const jsonError = new AppError(
    first?.code ?? 'verify-failed',
    bad.length === 0
      ? (first?.message ?? `verification failed (exit ${exitCode})`)
      : `${bad.length} of ${results.length} backup(s) failed verification: ${bad.map((r) => r.name).join(', ')}${failedTargets(bad)}${first ? ` (${first.message})` : ''}`,
    { exitCode, hint: first?.hint },
  );
  return { exitCode, errors: [], json, jsonError };
}

/** ` (the copy in target offsite)` when a further bucket target's copy failed a check. */
function failedTargets(bad: readonly BackupVerification[]): string {
  const names = new Set(bad.flatMap((r) => r.checks.filter((c) => !c.ok).map((c) => /^target (\S+) /.exec(c.check)?.[1] ?? '')));
  names.delete('');
  return names.size ? ` (the copy in target ${[...names].join(', ')})` : '';
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
