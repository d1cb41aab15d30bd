import { createInterface } from 'node:readline/promises';
import { Option, type Command } from '@commander-js/extra-typings';
import { restore, type RestoreResult } from '../../api/index.js';
import { redact } from '../../logging/redact.js';
import { UsageError } from '../../errors/index.js';
import { loadContext, writeJson, type CommonFlags } from '../context.js';
import { addCommonOptions } from '../options.js';
import { stopOnSignals } from '../signals.js';
import { ok, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { createRestoreProgress } from '../progress.js';
import { formatDuration } from '../../model/human-units.js';

interface RestoreFlags extends CommonFlags {
  latest?: boolean;
  target?: string;
  targetEnv?: string;
  from?: 'local' | 'remote';
  jobs?: string;
  create?: boolean;
  yes?: boolean;
  withGlobals?: boolean;
  json?: boolean;
}

/** `pgbak restore`: one backup into a target database. */
export function registerRestore(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('restore')
    .description(
      'restore a backup: check it against its manifest, [gpg -d], pg_restore --clean --if-exists into the target; prints the RTO',
    )
    .argument('[name]', 'backup name (pgbak list), or one of its file names')
    .option('--latest', 'restore the newest good backup of the database')
    .option('--target <url|name>', 'target database: a name on the DATABASE_URL server, or a postgresql:// URL without password')
    .option('--target-env <VAR>', 'read the target URL (which may hold a password) from this environment variable')
    .addOption(new Option('--from <where>', 'read only this copy (default: local, else the bucket)').choices(['local', 'remote'] as const))
    .option(
      '--jobs <N>',
      'parallel pg_restore jobs (> 1 needs a file: a local plain dump is used as is, anything else is spooled to BACKUP_DIR)',
      '1',
    )
    .option('--create', 'create the target database when it does not exist')
    .option('--yes', 'restore over a non-empty database without asking')
    .option('--with-globals', "first apply the backup's roles and tablespaces (existing roles are left as they are)")
    .option('--json', 'print the result as JSON on stdout');
  addCommonOptions(cmd).action(async (name: string | undefined, flags: RestoreFlags) => {
    slot.outcome = await runRestoreCommand(name, flags);
  });
}

/** The --target / --target-env value; a URL with a password on the command line is refused (ps shows argv). */
export function targetOf(flags: Pick<RestoreFlags, 'target' | 'targetEnv'>, env: NodeJS.ProcessEnv = process.env): string {
  if (flags.target !== undefined && flags.targetEnv !== undefined) throw new UsageError('use either --target or --target-env, not both');
  if (flags.targetEnv !== undefined) {
    const value = env[flags.targetEnv];
    if (!value) throw new UsageError(`--target-env ${flags.targetEnv}: that environment variable is not set`);
    return value;
  }
  if (flags.target === undefined)
    throw new UsageError('--target is required: a database name on the DATABASE_URL server, or a postgresql:// URL');
  if (/:\/\/[^/@]*:[^/@]*@/.test(flags.target) || /[?&]password=/i.test(flags.target)) {
    throw new UsageError('a --target URL with a password is refused on the command line (it would show in the process list)', {
      hint: 'use --target-env VAR with the URL in an environment variable, a ~/.pgpass file, or a bare database name',
    });
  }
  return flags.target;
}

async function askOnTty(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

async function runRestoreCommand(name: string | undefined, flags: RestoreFlags): Promise<CommandOutcome> {
  const target = targetOf(flags);
  const jobs = Number(flags.jobs ?? '1');
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`--jobs must be a whole number of 1 or more (got ${flags.jobs})`);
  const ctx = loadContext(flags, { openLogFile: true });
  if (ctx.jobs.length !== 1) throw new UsageError('restore acts on one job: choose it with --job NAME');
  const job = ctx.jobs[0]!;
  const controller = stopOnSignals(ctx.logger, 'restore');
  const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY) && !flags.json;
  const progress = flags.json ? undefined : createRestoreProgress(ctx.logger);
  let result: RestoreResult;
  try {
    result = await restore({
      job,
      name,
      latest: flags.latest,
      target,
      from: flags.from,
      jobs,
      create: flags.create,
      yes: flags.yes,
      withGlobals: flags.withGlobals,
      confirm: interactive && !flags.yes ? askOnTty : undefined,
      logger: ctx.logger,
      signal: controller.signal,
      onProgress: progress ? (p) => progress.update(p) : undefined,
    });
  } finally {
    progress?.stop();
    controller.dispose();
  }
  if (flags.json) writeJson(result);
  else process.stdout.write(describe(result));
  return ok;
}

function describe(r: RestoreResult): string {
  const objects = r.objects.total === undefined ? `${r.objects.restored} objects` : `${r.objects.restored}/${r.objects.total} objects`;
  return (
    [
      `restore ok: ${r.name} → ${r.target.database}${r.target.created ? ' (created)' : ''} (${objects}, from ${r.source.where} ${r.source.location})`,
      `  backup of database ${r.database}, server ${r.server.systemIdentifier ?? '(identifier not recorded)'} (PostgreSQL ${r.server.version}, backed up on host ${r.server.host})`,
      `  target ${redact(r.target.url)}, ${r.mode} mode, jobs ${r.jobs}${r.singleTransaction ? ', single transaction' : ''}`,
      ...(r.globals
        ? [
            `  globals: roles created ${r.globals.created.join(', ') || 'none'}; ${r.globals.existing.length} existing roles left as they were`,
          ]
        : []),
      `  RTO ${formatDuration(r.durationMs)} (checks ${formatDuration(r.verifyMs)}, pg_restore ${formatDuration(r.restoreMs)})`,
      ...r.warnings.map((w) => `  warning: ${w}`),
    ].join('\n') + '\n'
  );
}
