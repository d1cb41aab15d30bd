import type { Command } from '@commander-js/extra-typings';
import type { PruneJobResult } from '../../api/index.js';

type Decision = PruneJobResult['decisions']['keep'][number];
import { ExitCode, InterruptedError, StorageError } from '../../errors/index.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { formatBytes } from '../../model/human-units.js';

interface PruneFlags extends CommonFlags {
  dryRun?: boolean;
  json?: boolean;
}

/** `pgbak prune`: apply retention to each job's directory and bucket. */
export function registerPrune(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('prune')
    .description('apply retention (RETENTION_DAYS, BACKUP_KEEP_MIN, GFS) locally and in the bucket; never removes the last good backups')
    .option('--dry-run', 'print every decision with its reason and every file that would go; delete nothing')
    .option('--json', 'print the decisions as JSON on stdout (docs/json.md)');
  addCommonOptions(cmd).action(async (flags: PruneFlags) => {
    slot.outcome = await runCommand('prune', flags.json, () => runPruneCommand(flags), { dryRun: Boolean(flags.dryRun) });
  });
  addExamples(cmd, [
    ['pgbak prune --dry-run', 'every decision with its reason, and the files that would be deleted'],
    ['pgbak prune', 'apply retention locally and in the bucket'],
    ['pgbak prune --all --set RETENTION_DAYS=14 --dry-run', 'what a 14-day policy would remove, for every job'],
  ]);
}

/** A job's prune as `prune --json` prints it. */
function pruneJson(job: string, r: PruneJobResult): Record<string, unknown> {
  return { job, ...r };
}

async function runPruneCommand(flags: PruneFlags): Promise<CommandOutcome> {
  const { prune } = await import('../../api/prune.js');
  const { stopOnSignals } = await import('../signals.js');
  const ctx = await loadContext(flags, { openLogFile: !flags.dryRun });
  const results: { job: string; result: PruneJobResult }[] = [];
  // Deleting is cleanup, so a stop aborts only the listing; the grace bounds the rest.
  const stop = stopOnSignals(ctx.logger, 'prune');
  try {
    // A whole-server job (BACKUP_DATABASES): each database it backed up, as a one-database job.
    const jobs = ctx.jobs.some((j) => j.backup.databases)
      ? await (await import('../../api/server-jobs.js')).expandServerJobs(ctx.jobs, { discover: false, logger: ctx.logger })
      : ctx.jobs;
    for (const job of jobs) {
      if (stop.signal.aborted) break;
      const result = await prune(job, { dryRun: Boolean(flags.dryRun), logger: ctx.logger, signal: stop.signal });
      results.push({ job: job.name, result });
      if (!flags.json) process.stdout.write(describe(job.name, result));
    }
  } finally {
    stop.dispose();
  }
  const json = { extra: { dryRun: Boolean(flags.dryRun) }, results: results.map((r) => pruneJson(r.job, r.result)) };
  if (stop.signal.aborted)
    return { exitCode: ExitCode.interrupted, errors: [new InterruptedError('interrupted', { hint: undefined })], json };
  const errors = results.flatMap((r) => r.result.errors);
  const missing = results.find((r) => r.result.missingPermission)?.result.missingPermission;
  if (errors.length > 0) {
    const e = new StorageError('prune-incomplete', `prune could not delete ${errors.length} item(s): ${errors[0]}`, {
      hint: missing
        ? `the access key lacks ${missing}: a least-privilege backup key cannot prune (docs/storage.md); run prune with a key that has it`
        : 'the backups named were left in place (manifest first, so none is left half-deleted); check permissions and run prune again',
    });
    return { exitCode: e.exitCode, errors: [e], json };
  }
  return { exitCode: ExitCode.ok, errors: [], json };
}

/**
 * A decision's reasons without the `kept: ` / `removed: ` each carries (the KEEP/REMOVE column
 * says it), each once.
 */
export function reasonsText(d: Pick<Decision, 'reasons'>): string {
  const plain = d.reasons.map((r) => r.replace(/^((?:local|remote): )?(?:kept|removed): /, '$1'));
  return [...new Set(plain)].join('; ');
}

function describe(job: string, r: PruneJobResult): string {
  const lines = [`prune ${job}${r.dryRun ? ' (dry run: nothing deleted)' : ''}:`];
  const all = [...r.decisions.keep.map((d) => ({ d, keep: true })), ...r.decisions.remove.map((d) => ({ d, keep: false }))].sort(
    (a, b) => b.d.time.getTime() - a.d.time.getTime(),
  );
  const filesOf = (name: string) => r.files.filter((f) => f.backup === name);
  for (const { d, keep } of all) {
    const files = filesOf(d.name);
    // A kept backup may still lose one copy (a useless manifest whose artifact is gone): its files are listed too.
    lines.push(`  ${keep ? 'keep  ' : 'remove'} ${d.name}  ${d.state.padEnd(10)} ${reasonsText(d)}`);
    for (const where of ['local', 'remote'] as const) {
      const here = files.filter((f) => f.location === where);
      if (here.length === 0) continue;
      lines.push(`           ${r.dryRun ? 'would delete' : 'deleted'} ${where === 'local' ? 'locally' : 'in the bucket'}:`);
      for (const f of here) lines.push(`             ${f.path}`);
    }
  }
  if (all.length === 0) lines.push('  no backups of this database');
  for (const l of r.locked)
    lines.push(`  kept ${l.backup} in the bucket: under S3 Object Lock until ${l.until ?? 'its legal hold is lifted'}`);
  const n = r.files.length;
  const where = (['local', 'remote'] as const)
    .map((w) => [w, r.files.filter((f) => f.location === w).length] as const)
    .filter(([, c]) => c > 0)
    .map(([w, c]) => `${c} ${w}`);
  lines.push(
    `  ${r.dryRun ? 'would delete' : 'deleted'} ${n} file(s)${where.length ? ` (${where.join(', ')})` : ''}; kept ${r.decisions.keep.length} backup(s)`,
  );
  // What killed runs left behind (leftovers.ts): said only when there was some.
  for (const t of r.leftovers.tempFiles)
    lines.push(`  ${r.dryRun ? 'would remove' : 'removed'} temp file of a killed run: ${t.path} (${formatBytes(t.size)})`);
  for (const u of r.leftovers.uploads)
    lines.push(
      `  ${r.dryRun ? 'would abort' : 'aborted'} multipart upload of a killed run: ${u.key} (started ${u.initiated.toISOString()})`,
    );
  if (r.wal) lines.push(...describeWal(r.wal, r.dryRun));
  return lines.join('\n') + '\n';
}

/** Base backups and WAL (prune-wal.ts): each decision, then the files. */
function describeWal(w: NonNullable<PruneJobResult['wal']>, dryRun: boolean): string[] {
  const lines = [`  base backups and WAL of the cluster ${w.systemIdentifier}:`];
  const all = [...w.baseBackups.keep.map((d) => ({ d, keep: true })), ...w.baseBackups.remove.map((d) => ({ d, keep: false }))];
  for (const { d, keep } of all.sort((a, b) => b.d.time.getTime() - a.d.time.getTime()))
    lines.push(`  ${keep ? 'keep  ' : 'remove'} ${d.name}  base       ${reasonsText(d)}`);
  if (all.length === 0) lines.push('  no base backup');
  for (const f of w.files.filter((x) => x.backup !== 'wal')) lines.push(`           ${dryRun ? 'would delete' : 'deleted'} ${f.path}`);
  const verb = dryRun ? 'would delete' : 'deleted';
  lines.push(
    w.walCutoff
      ? `  WAL: ${verb} ${w.files.filter((x) => x.backup === 'wal').length} file(s) older than ${w.walCutoff} (the oldest kept base backup's start); .history files kept`
      : '  WAL: kept (no base backup)',
  );
  if (dryRun) for (const f of w.files.filter((x) => x.backup === 'wal')) lines.push(`           would delete ${f.path}`);
  return lines;
}
