import type { Command } from '@commander-js/extra-typings';
import type { DatabaseStatus, LoadedJobs, StatusTarget } from '../../api/index.js';
import { resolveStorage } from '../../config/job.js';
import { AppError, ExitCode, UsageError } from '../../errors/index.js';
import { LineLogger } from '../../logging/logger.js';
import { flagLayer, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { formatBytes, formatDuration, formatTime } from '../../model/human-units.js';
import { useRedactor } from '../shown.js';
import { out } from '../style.js';

interface StatusFlags extends CommonFlags {
  json?: boolean;
  forget?: string;
}

/** `pgbak status`: a Nagios/cron-style check of every database's backups, from storage alone. */
export function registerStatus(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('status')
    .description(
      'age of the newest good backup, last run, last restore test and size trend per database, read from BACKUP_DIR and the bucket; ' +
        `exit ${ExitCode.stale} when the newest good backup is older than BACKUP_RPO or the last run failed`,
    )
    .option('--json', 'print the report as JSON on stdout (docs/json.md)')
    .option(
      '--forget <database>',
      'retire a database status should no longer check (one mistyped run, a dropped database): its last-run records go, its backups stay',
    );
  addCommonOptions(cmd).action(async (flags: StatusFlags) => {
    slot.outcome = flags.forget
      ? await runCommand('status', flags.json, () => runForget(flags.forget!, flags), { forgotten: true })
      : await runCommand('status', flags.json, () => runStatusCommand(flags), { checkedAt: new Date().toISOString() });
  });
  addExamples(cmd, [
    ['pgbak status', `every database: newest good backup, last run, last restore test; exit ${ExitCode.stale} when stale`],
    ['pgbak status --job shop --json', 'one job, as JSON (for a monitoring script)'],
    ['pgbak status --set BACKUP_RPO=26h', 'judge against a 26-hour RPO for this check'],
    ['pgbak status --forget nosuchdb', 'stop checking a database (its backups are kept)'],
  ]);
}

/** A database's status as `status --json` prints it: the restore test's time as `time`, like every other time. */
function databaseJson(d: DatabaseStatus): Record<string, unknown> {
  const t = d.lastRestoreTest;
  return { ...d, lastRestoreTest: t ? { backup: t.backup, time: t.at, ok: t.ok, durationMs: t.durationMs } : null };
}

/** The --json error of a failed check: every database's reasons, in one line. */
function staleError(databases: readonly DatabaseStatus[]): AppError {
  const bad = databases.filter((d) => !d.ok);
  return new AppError('stale', bad.map((d) => `${d.job}: ${d.reasons.join('; ')}`).join('; '), {
    exitCode: ExitCode.stale,
    hint: 'run `pgbak backup` (or see why the last run failed in its log), then `pgbak status` again',
  });
}

/**
 * Jobs from the configuration (every job unless --job), or, with no DATABASE_URL and no config
 * file (a host with storage variables only), every database found in storage.
 */
async function loadForStatus(flags: StatusFlags): Promise<LoadedJobs> {
  const { loadJobs } = await import('../../config/config-file.js');
  const loaded = loadJobs({
    configPath: flags.config,
    flags: await flagLayer(flags.set),
    ...(flags.envFile ? { envFile: flags.envFile } : {}),
    requireDatabaseUrl: false,
  });
  useRedactor(loaded.redactor);
  // stdout is the report's: the configuration's warnings (typos, secrets) go to stderr.
  for (const w of loaded.warnings) process.stderr.write(`pgbak: warning: ${w}\n`);
  return loaded;
}

/** `status --forget DB`: retire a database in BACKUP_DIR and the bucket; see forgetDatabase. */
async function runForget(database: string, flags: StatusFlags): Promise<CommandOutcome> {
  const { forgetDatabase } = await import('../../api/forget.js');
  const loaded = await loadForStatus(flags);
  const storage = loaded.jobs[0] ?? resolveStorage(loaded.global, { cwd: process.cwd() });
  const r = await forgetDatabase({ storage, database, configured: loaded.jobs.map((j) => j.database) });
  if (!flags.json) {
    process.stdout.write(
      `${database}: retired in ${r.paths.join(' and ')}; status no longer checks it until a newer backup or run of it appears` +
        `${r.backupsKept ? ` (${r.backupsKept} good backup(s) kept; delete them by hand when no longer needed)` : ''}\n`,
    );
  }
  return { exitCode: ExitCode.ok, errors: [], json: { results: [r], extra: { forgotten: true } } };
}

async function targetsOf(flags: StatusFlags): Promise<StatusTarget[]> {
  const [{ discoverTargets, jobTarget }, { selectJobs }] = await Promise.all([
    import('../../api/status.js'),
    import('../../config/config-file.js'),
  ]);
  const loaded = await loadForStatus(flags);
  if (loaded.jobs.length > 0) {
    const jobs = selectJobs(loaded.jobs, { job: flags.job, all: flags.all ?? flags.job === undefined });
    // A whole-server job (BACKUP_DATABASES): each of its databases, as a one-database job.
    if (!jobs.some((j) => j.backup.databases)) return jobs.map(jobTarget);
    const { expandServerJobs } = await import('../../api/server-jobs.js');
    return (await expandServerJobs(jobs, { discover: true })).map(jobTarget);
  }
  const found = await discoverTargets(loaded.global, { cwd: process.cwd() });
  if (flags.job === undefined) return found;
  const picked = found.filter((t) => t.job === flags.job || t.database === flags.job);
  if (picked.length === 0) {
    throw new UsageError(`no backups of "${flags.job}" found; found: ${found.map((t) => t.job).join(', ') || 'none'}`);
  }
  return picked;
}

async function runStatusCommand(flags: StatusFlags): Promise<CommandOutcome> {
  const [{ status }, { stopOnSignals }] = await Promise.all([import('../../api/status.js'), import('../signals.js')]);
  // status reads storage only and keeps stdout for the report: its stop notices go to stderr.
  const stop = stopOnSignals(new LineLogger({ level: 'warn' }), 'status check');
  let report: Awaited<ReturnType<typeof status>>;
  try {
    const targets = await targetsOf(flags);
    if (targets.length === 0) {
      throw new UsageError('nothing to check: no DATABASE_URL or config file, and no backups found in storage', {
        hint: 'set DATABASE_URL or --config, or the STORAGE_* variables / BACKUP_DIR where the backups are',
      });
    }
    report = await status({ targets, signal: stop.signal });
  } finally {
    stop.dispose();
  }
  if (!flags.json) process.stdout.write(report.databases.map(describe).join('\n'));
  for (const d of report.databases) {
    for (const w of d.warnings)
      process.stderr.write(`pgbak: warning: ${d.job === d.database ? d.job : `${d.job} (${d.database})`}: ${w}\n`);
    if (!d.ok) process.stderr.write(`pgbak: ${d.job === d.database ? d.job : `${d.job} (${d.database})`}: ${d.reasons.join('; ')}\n`);
  }
  const json = { extra: { checkedAt: report.checkedAt }, results: report.databases.map(databaseJson) };
  if (report.ok) return { exitCode: ExitCode.ok, errors: [], json };
  return { exitCode: ExitCode.stale, errors: [], json, jsonError: staleError(report.databases) };
}

function ago(iso: string): string {
  return `${formatDuration(Date.now() - Date.parse(iso))} ago`;
}

/** A few lines per database, for people. */
function describe(d: DatabaseStatus): string {
  const lines = [`${d.job}${d.job === d.database ? '' : ` (database ${d.database})`}: ${d.ok ? out().ok('OK') : out().fail('PROBLEM')}`];
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(18)} ${value}`);
  const g = d.newestGood;
  row(
    'newest good backup',
    g
      ? `${g.name}, ${formatDuration(g.ageMs)} old (${formatBytes(g.sizeBytes)}; ${g.locations.join(' + ')}); BACKUP_RPO ${formatDuration(d.rpoMs)}`
      : 'none',
  );
  const r = d.lastRun;
  row(
    'last run',
    r
      ? `${r.status} at ${formatTime(r.finishedAt)} (${ago(r.finishedAt)}, took ${formatDuration(r.durationMs)}, on ${r.host})${r.error ? `: ${r.error.message}` : ''}`
      : 'unknown (no last-run record)',
  );
  const t = d.lastRestoreTest;
  row(
    'last restore test',
    t
      ? `${t.ok ? out().ok('passed') : out().fail('FAILED')} at ${formatTime(t.at)} (${ago(t.at)}), took ${formatDuration(t.durationMs)}, on ${t.backup}`
      : 'none',
  );
  const trend = d.sizeTrend;
  if (trend.backups.length > 0) {
    const sizes = [...trend.backups].reverse().map((b) => formatBytes(b.sizeBytes));
    row(
      'size trend',
      `${sizes.join(' → ')}${trend.judgement ? ` (${trend.judgement.anomalous ? 'ANOMALY: ' : ''}${trend.judgement.reason})` : ''}`,
    );
  }
  row('backups', `${d.backups.good} good, ${d.backups.incomplete} incomplete, ${d.backups.corrupt} corrupt in ${d.destination}`);
  const w = d.wal;
  if (w) {
    row(
      'WAL archive',
      w.newestSegment && w.ageMs !== null
        ? `newest segment ${w.newestSegment}, ${formatDuration(w.ageMs)} old; WAL_RPO ${formatDuration(w.rpoMs)} (${w.location})`
        : `no segment yet (${w.location})`,
    );
    const f = w.failures;
    row(
      'archive failures',
      f
        ? `${f.count} failed wal-push call(s), the last at ${formatTime(f.lastFailureAt)} (${ago(f.lastFailureAt)})${f.failing ? ', after the newest archived segment' : ''}: ${f.lastError}`
        : 'none recorded',
    );
    if (w.newestBaseBackupAt) row('base backup', `newest completed at ${formatTime(w.newestBaseBackupAt)} (${ago(w.newestBaseBackupAt)})`);
  }
  for (const reason of d.reasons) row('problem', reason);
  for (const w of d.warnings) row('warning', w);
  return lines.join('\n') + '\n';
}
