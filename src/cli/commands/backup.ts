import type { Command } from '@commander-js/extra-typings';
import type { BackupProgress } from '../../api/backup.js';
import type { BackupPlan } from '../../api/plan.js';
import type { JobConfig } from '../../config/job.js';
import { AppError, ExitCode } from '../../errors/index.js';
import type { BackupResult } from '../../model/backup-result.js';
import { forEachLimit } from '../../model/for-each-limit.js';
import { formatBytes, formatDuration } from '../../model/human-units.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { out } from '../style.js';
import type { ServerRunResult } from '../../api/server-run.js';
import { serverBackupOutcome, serverPlanJson, serverPlanText } from './backup-server.js';

interface BackupFlags extends CommonFlags {
  dryRun?: boolean;
  upload?: boolean;
  encrypt?: boolean;
  prune?: boolean;
  json?: boolean;
}

/** `pgbak backup`: back up every job (or `--job`), or with --dry-run print the plan. */
export function registerBackup(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('backup', { isDefault: false })
    .description('back up the database: pg_dump → [gpg|age] → BACKUP_DIR + s3://STORAGE_BUCKET/backups/, manifest last')
    .option('--dry-run', 'check everything (pg_dump, gpg key, database, bucket) and print the plan; change nothing')
    .option('--no-upload', 'keep the backup local only')
    .option('--no-encrypt', 'do not encrypt, even when GPG_RECIPIENT or AGE_RECIPIENTS is set')
    .option('--no-prune', 'do not apply retention after a successful backup')
    .option('--json', 'print the result as JSON on stdout (docs/json.md)');
  addCommonOptions(cmd).action(async (flags: BackupFlags) => {
    slot.outcome = await runCommand('backup', flags.json, () => runBackupCommand(flags), { dryRun: Boolean(flags.dryRun) });
  });
  addExamples(cmd, [
    ['pgbak backup --dry-run', 'check pg_dump, the gpg key, the database and the bucket; change nothing'],
    ['pgbak backup', 'one backup: local copy, upload, then retention'],
    ['pgbak backup --no-upload --no-encrypt', 'a local, unencrypted backup only'],
    [
      'pgbak backup --set AGE_RECIPIENTS=/etc/pgbak/age-recipients',
      'encrypt with age to every key of the file (operations + offline break-glass)',
    ],
    ['pgbak backup --all --json', 'every job of the config file, the results as JSON'],
  ]);
}

/** A backup result as `backup --json` prints it: `time`, and `locations` (names) beside `paths`. */
export function backupJson(r: BackupResult): Record<string, unknown> {
  const { locations: paths, ...rest } = r;
  return {
    ...rest,
    time: r.startedAt,
    locations: paths.map((p) => (p.startsWith('s3://') ? 'remote' : 'local')),
    paths,
  };
}

async function runBackupCommand(flags: BackupFlags): Promise<CommandOutcome> {
  const ctx = await loadContext(flags, { openLogFile: !flags.dryRun });
  if (flags.dryRun) return dryRun(ctx.jobs, flags);
  const [{ runJob }, { stopOnSignals }, { createProgress }] = await Promise.all([
    import('../../api/run-job.js'),
    import('../signals.js'),
    import('../progress.js'),
  ]);
  const controller = stopOnSignals(ctx.logger, 'backup');
  const results: BackupResult[] = [];
  // Whole-server jobs (BACKUP_DATABASES): one summary a server run (api/server-run.ts).
  const servers: ServerRunResult[] = [];
  const serverJob = ctx.jobs.some((j) => j.backup.databases !== undefined);
  const progress = ctx.jobs.length === 1 && !serverJob && !flags.json ? createProgress(ctx.logger) : undefined;
  try {
    await forEachLimit(ctx.jobs, Math.max(1, ctx.global.BACKUP_CONCURRENCY), async (job) => {
      if (job.backup.databases !== undefined) {
        const { runServer } = await import('../../api/server-run.js');
        const run = await runServer(job, {
          logger: ctx.logger,
          signal: controller.signal,
          upload: flags.upload !== false,
          encrypt: flags.encrypt !== false,
          prune: flags.prune !== false,
          concurrency: ctx.global.BACKUP_CONCURRENCY,
        });
        servers.push(run);
        results.push(...run.results);
        return;
      }
      const result = await runJob(job, {
        logger: ctx.logger,
        signal: controller.signal,
        upload: flags.upload !== false,
        encrypt: flags.encrypt !== false,
        prune: flags.prune !== false,
        ...(progress ? { onProgress: (p: BackupProgress) => progress.update(p) } : {}),
        onBackupDone: () => progress?.stop(),
      });
      results.push(result);
    });
  } finally {
    controller.dispose();
  }
  if (!flags.json) for (const r of results) process.stdout.write(describe(r));
  if (servers.length > 0) return serverBackupOutcome(servers, results, controller.signal.aborted, Boolean(flags.json), backupJson);
  return {
    ...backupOutcome(results, ctx.jobs.length, controller.signal.aborted),
    json: { extra: { dryRun: false }, results: results.map(backupJson) },
  };
}

/**
 * `backup --dry-run`: the plan of every job; the error of each that would not succeed, and the
 * exit code of the first. A whole-server job (BACKUP_DATABASES) is its server's databases as a run would take
 * them now, after a head saying which and what its settings name that cannot be backed up.
 */
async function dryRun(jobs: readonly JobConfig[], flags: BackupFlags): Promise<CommandOutcome> {
  const plans: BackupPlan[] = [];
  const errors: AppError[] = [];
  const servers: Record<string, unknown>[] = [];
  const { planBackup } = await import('../../api/plan.js');
  for (const job of jobs) {
    let units: readonly JobConfig[] = [job];
    if (job.backup.databases) {
      const { chooseServerDatabases, databaseJob } = await import('../../api/server-run.js');
      // The databases cannot be listed (the server does not answer): the plan of the connection itself says why.
      const choice = await chooseServerDatabases(job).catch(() => undefined);
      if (choice) {
        units = choice.order.map((d, i) => databaseJob(job, d, undefined, i === 0));
        servers.push(serverPlanJson(job, choice));
        if (!flags.json) process.stdout.write(serverPlanText(job, choice));
        for (const f of choice.failures) {
          errors.push(new AppError(f.error.code, `[${f.database}] ${f.error.message}`, { hint: f.error.hint, exitCode: f.error.exitCode }));
        }
      }
    }
    for (const unit of units) {
      const plan = await planBackup({ job: unit, upload: flags.upload !== false, encrypt: flags.encrypt !== false });
      plans.push(plan);
      if (plan.error) errors.push(plan.error);
      if (!flags.json) process.stdout.write(renderPlan(plan));
    }
  }
  const json = {
    extra: { dryRun: true, ...(servers.length ? { servers } : {}) },
    results: plans.map((p) => ({ ...p.data, verdict: p.verdict })),
  };
  const first = errors[0];
  return first ? { exitCode: first.exitCode, errors, json } : { exitCode: ExitCode.ok, errors: [], json };
}

/** The text of a plan, as `backup --dry-run` prints it. */
export function renderPlan(plan: BackupPlan): string {
  const { data } = plan;
  const lines = [
    `pgbak backup --dry-run: job ${data.job}, database ${data.database} (${data.databaseUrl})`,
    'checks:',
    ...data.checks.map((c) => `  ${c.ok ? out().ok('[ok]') : out().fail('[FAIL]')} ${c.check}: ${c.detail}`),
    'steps:',
    ...data.steps.map((s, i) => `  ${i + 1}. ${s}`),
    'would create:',
    ...data.files.map((f) => `  ${f}`),
    ...data.objects.map((o) => `  ${o}`),
    plan.verdict === 'fail'
      ? 'result: a backup would FAIL (see the failed check)'
      : plan.verdict === 'partial'
        ? 'result: a backup would be PARTIAL: kept locally, not uploaded (exit 3; see the failed check)'
        : 'result: ready; nothing was changed',
  ];
  return lines.join('\n') + '\n';
}

/**
 * The outcome of the runs: with several jobs, "N of M backups failed: a, b" first; then each
 * failed run's error (prefixed `[job] ` with several jobs). Exit 130 when interrupted, else the
 * first failure's code.
 */
function backupOutcome(results: readonly BackupResult[], jobCount: number, interrupted: boolean): CommandOutcome {
  const failed = results.filter((r) => r.status !== 'ok');
  if (failed.length === 0) return { exitCode: ExitCode.ok, errors: [] };
  const errors: AppError[] = [];
  if (jobCount > 1) {
    errors.push(
      new AppError('backups-failed', `${failed.length} of ${results.length} backups failed: ${failed.map((r) => r.job).join(', ')}`),
    );
  }
  for (const r of failed) {
    if (!r.error) continue;
    const { code, message, hint, exitCode } = r.error;
    errors.push(new AppError(code, `${jobCount > 1 ? `[${r.job}] ` : ''}${message}`, { hint, exitCode }));
  }
  const exitCode = interrupted ? ExitCode.interrupted : (failed[0]!.error?.exitCode ?? ExitCode.failure);
  return { exitCode, errors };
}

function describe(r: BackupResult): string {
  if (r.status === 'failed') return `backup ${out().fail('FAILED')}: ${r.job} after ${formatDuration(r.durationMs)}\n`;
  const lines = [
    `backup ${r.status === 'ok' ? out().ok('ok') : out().warn('PARTIAL (local copy only)')}: ${r.name} (${formatBytes(r.sizeBytes ?? 0)}, ${formatDuration(r.durationMs)}${r.encrypted ? ', encrypted' : ''})`,
    ...r.locations.map((l) => `  ${l}`),
    r.files !== undefined
      ? `  sha256 ${r.sha256} (toc.dat; ${r.files} files, each with its sha256 in the manifest)`
      : `  sha256 ${r.sha256}`,
    ...r.warnings.map((w) => `  warning: ${w}`),
  ];
  return lines.join('\n') + '\n';
}
