import type { ServerRestorePlan, ServerRestoreResult } from '../../api/restore-server.js';
import { AppError, ExitCode, UsageError } from '../../errors/index.js';
import { formatBytes, formatDuration } from '../../model/human-units.js';
import type { RestoreResult } from '../../api/index.js';
import { loadContext, type CommonFlags } from '../context.js';
import type { CommandOutcome } from '../outcome.js';
import { out } from '../style.js';

/** The flags of `pgbak restore` this command reads. */
export interface ServerRestoreFlags extends CommonFlags {
  latest?: boolean;
  target?: string;
  targetEnv?: string;
  from?: string;
  parallel?: string;
  jobs?: string;
  create?: boolean;
  yes?: boolean;
  withGlobals?: boolean;
  json?: boolean;
  pgdata?: string;
  allDatabases?: boolean;
  targetServer?: string;
  dryRun?: boolean;
}

/** What restore.ts lends this command (it cannot be imported back from here). */
export interface ServerRestoreHelpers {
  readonly ask: (question: string) => Promise<boolean>;
  /** --target-server / --target-env, a URL with a password on the command line refused. */
  readonly targetOf: (flags: { target?: string | undefined; targetEnv?: string | undefined }) => string;
  readonly restoreJson: (r: RestoreResult) => Record<string, unknown>;
}

/**
 * `pgbak restore --all-databases --target-server URL` (or `--target-env VAR`): prints the plan,
 * then (unless --dry-run) asks once on a terminal (--yes: never), applies the globals and restores
 * every database. Exit 0 when every database is restored, 3 when some failed (each named), the
 * first failure's code when none was.
 */
export async function runServerRestore(
  name: string | undefined,
  flags: ServerRestoreFlags,
  helpers: ServerRestoreHelpers,
): Promise<CommandOutcome> {
  const { ask, targetOf, restoreJson } = helpers;
  if (!flags.allDatabases) throw new UsageError('--target-server is for --all-databases');
  if (name !== undefined || flags.latest || flags.target !== undefined || flags.create || flags.withGlobals || flags.pgdata !== undefined) {
    throw new UsageError(
      '--all-databases restores the newest backup of every database with its globals: give no NAME, --latest, --target, --create, --with-globals or --pgdata',
    );
  }
  const target = targetOf({ target: flags.targetServer, targetEnv: flags.targetEnv });
  const given = flags.parallel ?? flags.jobs ?? '1';
  const jobs = Number(given);
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new UsageError(`${flags.parallel === undefined ? '--jobs' : '--parallel'} must be a whole number of 1 or more (got ${given})`);
  const ctx = await loadContext(flags, { openLogFile: !flags.dryRun });
  if (ctx.jobs.length !== 1) throw new UsageError('restore acts on one job: choose it with --job NAME');
  const job = ctx.jobs[0]!;
  const [api, { stopOnSignals }] = await Promise.all([import('../../api/restore-server.js'), import('../signals.js')]);
  const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY) && !flags.json;
  if (flags.dryRun) {
    const { plan } = await api.planServerRestore({ job, targetServer: target, from: flags.from });
    if (!flags.json) process.stdout.write(`${planText(plan)}result: dry run; nothing was changed\n`);
    return { exitCode: ExitCode.ok, errors: [], json: { extra: { dryRun: true, plan }, results: [] } };
  }
  const controller = stopOnSignals(ctx.logger, 'restore');
  let result: ServerRestoreResult;
  try {
    result = await api.restoreServer({
      job,
      targetServer: target,
      jobs,
      concurrency: ctx.global.BACKUP_CONCURRENCY,
      yes: Boolean(flags.yes) || interactive,
      from: flags.from,
      onPlan: async (plan) => {
        if (!flags.json) process.stdout.write(planText(plan));
        if (flags.yes || !interactive) return true;
        return ask(
          `restore the globals and ${plan.databases.length} databases into ${plan.target}? Databases that exist are replaced (their objects of the backup dropped and restored)`,
        );
      },
      logger: ctx.logger,
      signal: controller.signal,
    });
  } finally {
    controller.dispose();
  }
  if (!flags.json) process.stdout.write(resultText(result));
  return outcomeOf(result, controller.signal.aborted, restoreJson);
}

function planText(plan: ServerRestorePlan): string {
  const lines = [
    `pgbak restore --all-databases: job ${plan.job} → ${plan.target}`,
    'plan:',
    plan.globals
      ? `  1. globals (roles, tablespaces) from ${plan.globals.backup} (${formatBytes(plan.globals.size)}); existing roles are left as they are`
      : '  1. globals: none stored (BACKUP_GLOBALS=false): roles must exist on the target',
    ...plan.databases.map((d, i) => `  ${i + 2}. ${d.database} ← ${d.backup} (${formatBytes(d.size)}, ${d.time})`),
  ];
  return lines.join('\n') + '\n';
}

function resultText(r: ServerRestoreResult): string {
  const ok = r.items.filter((i) => i.result).length;
  const lines = [
    `restore --all-databases ${ok === r.items.length ? out().ok('ok') : out().fail('INCOMPLETE')}: ${ok} of ${r.items.length} databases restored in ${formatDuration(r.durationMs)}`,
    ...(r.globals
      ? [
          `  globals: roles created ${r.globals.created.join(', ') || 'none'}; ${r.globals.existing.length} existing left as they were`,
          ...r.globals.errors.map((e) => `  warning: globals: ${e}`),
        ]
      : []),
    ...r.items.map((i) =>
      i.result
        ? `  ok ${i.database} ← ${i.backup}${i.result.target.created ? ' (created)' : ''}`
        : `  ${out().fail('FAILED')} ${i.database} ← ${i.backup}: ${i.error?.message ?? ''}`,
    ),
  ];
  return lines.join('\n') + '\n';
}

function outcomeOf(r: ServerRestoreResult, interrupted: boolean, restoreJson: ServerRestoreHelpers['restoreJson']): CommandOutcome {
  const failed = r.items.filter((i) => i.error);
  const json = {
    extra: { plan: r.plan, globals: r.globals },
    results: r.items.map((i) =>
      i.result
        ? { database: i.database, ok: true, ...restoreJson(i.result) }
        : { database: i.database, name: i.backup, ok: false, error: i.error ? { code: i.error.code, message: i.error.message } : null },
    ),
  };
  if (failed.length === 0) return { exitCode: ExitCode.ok, errors: [], json };
  const summary = new AppError(
    'databases-failed',
    `${failed.length} of ${r.items.length} databases not restored: ${failed.map((i) => i.database).join(', ')}`,
    {
      exitCode: interrupted
        ? ExitCode.interrupted
        : failed.length < r.items.length
          ? ExitCode.partial
          : (failed[0]!.error?.exitCode ?? ExitCode.failure),
      hint: 'the others were restored; restore each failed one with pgbak restore NAME --target DB',
    },
  );
  const each = failed.map(
    (i) => new AppError(i.error!.code, `[${i.database}] ${i.error!.message}`, { hint: i.error!.hint, exitCode: i.error!.exitCode }),
  );
  return { exitCode: summary.exitCode, errors: [summary, ...each], json };
}
