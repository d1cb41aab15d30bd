import { createInterface } from 'node:readline/promises';
import { Option, type Command } from '@commander-js/extra-typings';
import type { RestoreResult } from '../../api/index.js';
import { redact } from '../../logging/redact.js';
import { UsageError } from '../../errors/index.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { formatDuration } from '../../model/human-units.js';

interface RestoreFlags extends CommonFlags {
  latest?: boolean;
  /** The database of a whole-server job (BACKUP_DATABASES) whose backup is restored. */
  database?: string;
  target?: string;
  targetEnv?: string;
  from?: string;
  parallel?: string;
  /** Deprecated spelling of --parallel (hidden). */
  jobs?: string;
  create?: boolean;
  yes?: boolean;
  withGlobals?: boolean;
  json?: boolean;
  /** Point-in-time recovery: a new data directory, and the time to recover to. */
  pgdata?: string;
  time?: string;
  archive?: boolean;
  /** Whole server: every database of a BACKUP_DATABASES job into this server (restore-server.ts). */
  allDatabases?: boolean;
  targetServer?: string;
  dryRun?: boolean;
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
    .option(
      '--database <name>',
      'whole-server job (BACKUP_DATABASES): the database whose backup is restored (with --latest: its newest good one)',
    )
    .option('--target <url|name>', 'target database: a name on the DATABASE_URL server, or a postgresql:// URL without password')
    .option('--target-env <VAR>', 'read the target URL (which may hold a password) from this environment variable')
    .option(
      '--from <where>',
      'read only this copy: local, remote (the first bucket) or a bucket target by name (default: local, else the bucket)',
    )
    .option(
      '--parallel <N>',
      'pg_restore jobs run at once (> 1 needs a file: a local plain dump is used as is, anything else is spooled to BACKUP_DIR)',
    )
    .addOption(new Option('--jobs <N>', 'deprecated: use --parallel').hideHelp())
    .option('--create', 'create the target database when it does not exist')
    .option('--yes', 'restore over a non-empty database without asking')
    .option('--with-globals', "first apply the backup's roles and tablespaces (existing roles are left as they are)")
    .option('--json', 'print the result as JSON on stdout (docs/json.md)')
    .option(
      '--pgdata <dir>',
      'point-in-time recovery: extract a base backup into this new or empty data directory, ready to recover from the WAL archive',
    )
    .option(
      '--time <timestamp>',
      'with --pgdata: recover to this time (ISO 8601, e.g. 2026-12-05T17:59:00Z), then promote; --latest: to the end of the archive',
    )
    .option('--no-archive', 'with --pgdata: the restored server does not archive WAL (a test restore beside the running primary)')
    .option(
      '--all-databases',
      'whole server (BACKUP_DATABASES): the globals, then the newest backup of every database, created when missing',
    )
    .option('--target-server <url>', 'with --all-databases: the server, a postgresql:// URL without password (or --target-env VAR)')
    .option('--dry-run', 'with --all-databases: print the plan only; change nothing');
  // One backup into one database: no --all.
  addCommonOptions(cmd, { withAll: false }).action(async (name: string | undefined, flags: RestoreFlags) => {
    slot.outcome = await runCommand('restore', flags.json, async () => {
      if (flags.database !== undefined && (flags.allDatabases || flags.targetServer !== undefined || flags.pgdata !== undefined)) {
        throw new UsageError('--database picks one database to restore: not with --all-databases, --target-server or --pgdata');
      }
      if (flags.allDatabases || flags.targetServer !== undefined) {
        const { runServerRestore } = await import('./restore-server.js');
        return runServerRestore(name, flags, { ask: askOnTty, targetOf: (f) => targetOf(f, process.env, true), restoreJson });
      }
      if (flags.pgdata === undefined && flags.time === undefined) {
        if (flags.archive === false) throw new UsageError('--no-archive is for --pgdata (point-in-time recovery)');
        return runRestoreCommand(name, flags);
      }
      const { runPitrRestore } = await import('./restore-pitr.js');
      return runPitrRestore(name, flags);
    });
  });
  addExamples(cmd, [
    ['pgbak restore --latest --target shop_copy --create', 'the newest good backup into a new database shop_copy'],
    ['pgbak restore shop_20260101_120000 --target shop --yes', 'that backup over the existing database shop'],
    ['pgbak restore --latest --from remote --target shop_copy --create --parallel 4', 'from the bucket, 4 pg_restore jobs'],
    ['pgbak restore --latest --from offsite --target shop_copy --create', 'from the bucket target named offsite (the first bucket lost)'],
    ['pgbak restore --latest --target-env RESTORE_URL --with-globals', 'into the URL in $RESTORE_URL, roles first'],
    ['pgbak restore --latest --target shop_copy --create --set AGE_IDENTITY_FILE=/root/age-key.txt', 'an age-encrypted backup'],
    [
      'pgbak restore --time 2026-12-05T17:59:00Z --pgdata /var/lib/postgresql/15/pitr',
      'point in time: a base backup + WAL up to 17:59 UTC',
    ],
    ['pgbak restore --latest --pgdata /var/lib/postgresql/15/pitr', 'point in time: to the end of the WAL archive'],
    ['pgbak restore --all-databases --target-env NEW_SERVER_URL --parallel 2', 'a whole server: globals, then every database'],
    ['pgbak restore --latest --database crm --target crm_copy --create', 'whole-server job: the newest good backup of database crm'],
  ]);
}

/** A restore result as `restore --json` prints it: `parallel`, `locations`/`paths` of the copy read, `time`. */
export function restoreJson(r: RestoreResult): Record<string, unknown> {
  const { jobs, source, ...rest } = r;
  return { ...rest, time: r.startedAt, parallel: jobs, locations: [source.where], paths: [source.location] };
}

/**
 * The --target / --target-env value; a URL with a password on the command line is refused (ps
 * shows argv). `server`: the value of --target-server (restore --all-databases), named so in errors.
 */
export function targetOf(flags: Pick<RestoreFlags, 'target' | 'targetEnv'>, env: NodeJS.ProcessEnv = process.env, server = false): string {
  const option = server ? '--target-server' : '--target';
  if (flags.target !== undefined && flags.targetEnv !== undefined) throw new UsageError(`use either ${option} or --target-env, not both`);
  if (flags.targetEnv !== undefined) {
    const value = env[flags.targetEnv];
    if (!value) throw new UsageError(`--target-env ${flags.targetEnv}: that environment variable is not set`);
    return value;
  }
  if (flags.target === undefined) {
    throw server
      ? new UsageError('--all-databases needs the server to restore into: --target-server URL or --target-env VAR', {
          hint: 'a postgresql:// URL without password (a ~/.pgpass file or PGPASSWORD gives it), or the name of a variable holding the URL',
        })
      : new UsageError('--target is required: a database name on the DATABASE_URL server, or a postgresql:// URL');
  }
  if (/:\/\/[^/@]*:[^/@]*@/.test(flags.target) || /[?&]password=/i.test(flags.target)) {
    throw new UsageError(`a ${option} URL with a password is refused on the command line (it would show in the process list)`, {
      hint: `use --target-env VAR with the URL in an environment variable, a ~/.pgpass file${server ? '' : ', or a bare database name'}`,
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
  const { restore } = await import('../../api/restore.js');
  const [{ stopOnSignals }, { createRestoreProgress }] = await Promise.all([import('../signals.js'), import('../progress.js')]);
  const target = targetOf(flags);
  if (flags.jobs !== undefined && flags.parallel !== undefined)
    throw new UsageError('--jobs is the old name of --parallel: give only --parallel');
  const given = flags.parallel ?? flags.jobs ?? '1';
  const jobs = Number(given);
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new UsageError(`${flags.parallel === undefined ? '--jobs' : '--parallel'} must be a whole number of 1 or more (got ${given})`);
  const ctx = await loadContext(flags, { openLogFile: true });
  if (flags.jobs !== undefined) ctx.logger.warn('--jobs is deprecated (it reads like --job): use --parallel N');
  if (ctx.jobs.length !== 1) throw new UsageError('restore acts on one job: choose it with --job NAME');
  // A whole-server job (BACKUP_DATABASES): the database chosen with --database (or the NAME's).
  const { restoreUnit } = await import('../../api/server-jobs.js');
  const job = await restoreUnit(ctx.jobs[0]!, { database: flags.database, name, logger: ctx.logger });
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
  if (!flags.json) process.stdout.write(describe(result));
  return { exitCode: 0, errors: [], json: { results: [restoreJson(result)] } };
}

function describe(r: RestoreResult): string {
  const objects = r.objects.total === undefined ? `${r.objects.restored} objects` : `${r.objects.restored}/${r.objects.total} objects`;
  return (
    [
      `restore ok: ${r.name} → ${r.target.database}${r.target.created ? ' (created)' : ''} (${objects}, from ${r.source.where} ${r.source.location})`,
      `  backup of database ${r.database}, server ${r.server.systemIdentifier ?? '(identifier not recorded)'} (PostgreSQL ${r.server.version}, backed up on host ${r.server.host})`,
      `  target ${redact(r.target.url)}, ${r.mode} mode, parallel ${r.jobs}${r.singleTransaction ? ', single transaction' : ''}`,
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
