import type { Command } from '@commander-js/extra-typings';
import { prune, type PruneResult } from '../../api/index.js';
import { ExitCode, InterruptedError, StorageError } from '../../errors/index.js';
import { loadContext, writeJson, type CommonFlags } from '../context.js';
import { addCommonOptions } from '../options.js';
import { ok, outcomeOf, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { stopOnSignals } from '../signals.js';
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
    .option('--dry-run', 'print every decision with its reason; delete nothing')
    .option('--json', 'print the decisions as JSON on stdout');
  addCommonOptions(cmd).action(async (flags: PruneFlags) => {
    slot.outcome = await runPruneCommand(flags);
  });
}

async function runPruneCommand(flags: PruneFlags): Promise<CommandOutcome> {
  const ctx = loadContext(flags, { openLogFile: !flags.dryRun });
  const results: { job: string; result: PruneResult }[] = [];
  // Deleting is cleanup, so a stop aborts only the listing; the grace bounds the rest.
  const stop = stopOnSignals(ctx.logger, 'prune');
  try {
    for (const job of ctx.jobs) {
      if (stop.signal.aborted) break;
      const result = await prune(job, { dryRun: Boolean(flags.dryRun), logger: ctx.logger, signal: stop.signal });
      results.push({ job: job.name, result });
      if (!flags.json) process.stdout.write(describe(job.name, result));
    }
  } finally {
    stop.dispose();
  }
  if (flags.json) writeJson(results.length === 1 ? results[0] : results);
  if (stop.signal.aborted) return outcomeOf(ExitCode.interrupted, [new InterruptedError('interrupted', { hint: undefined })]);
  const errors = results.flatMap((r) => r.result.errors);
  if (errors.length > 0) {
    const e = new StorageError('prune-incomplete', `prune could not delete ${errors.length} item(s): ${errors[0]}`, {
      hint: 'the backups named were left in place (manifest first, so none is left half-deleted); check permissions and run prune again',
    });
    return outcomeOf(e.exitCode, [e]);
  }
  return ok;
}
function describe(job: string, r: PruneResult): string {
  const lines = [`prune ${job}${r.dryRun ? ' (dry run: nothing deleted)' : ''}:`];
  const all = [...r.decisions.keep.map((d) => ({ d, keep: true })), ...r.decisions.remove.map((d) => ({ d, keep: false }))].sort(
    (a, b) => b.d.time.getTime() - a.d.time.getTime(),
  );
  for (const { d, keep } of all) lines.push(`  ${keep ? 'keep  ' : 'remove'} ${d.name}  ${d.state.padEnd(10)} ${d.reasons.join('; ')}`);
  if (all.length === 0) lines.push('  no backups of this database');
  const n = r.dryRun ? r.planned.length : r.deleted.length;
  lines.push(`  ${r.dryRun ? 'would delete' : 'deleted'} ${n} file(s); kept ${r.decisions.keep.length} backup(s)`);
  // What killed runs left behind (leftovers.ts): said only when there was some.
  for (const t of r.leftovers.tempFiles)
    lines.push(`  ${r.dryRun ? 'would remove' : 'removed'} temp file of a killed run: ${t.path} (${formatBytes(t.size)})`);
  for (const u of r.leftovers.uploads)
    lines.push(
      `  ${r.dryRun ? 'would abort' : 'aborted'} multipart upload of a killed run: ${u.key} (started ${u.initiated.toISOString()})`,
    );
  return lines.join('\n') + '\n';
}
