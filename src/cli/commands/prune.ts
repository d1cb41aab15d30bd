import type { Command } from '@commander-js/extra-typings';
import { ExitCode, StorageError } from '../../errors/index.js';
import { jobIdentity } from '../../api/identity.js';
import { prune, type PruneResult } from '../../retention/prune.js';
import { createStorage } from '../../storage/index.js';
import { loadContext, writeJson, type CommonFlags } from '../context.js';
import { addCommonOptions } from '../options.js';
import { stopOnSignals } from '../signals.js';
import { formatBytes } from '../../model/human-units.js';

interface PruneFlags extends CommonFlags {
  dryRun?: boolean;
  json?: boolean;
}

export function registerPrune(program: Command): void {
  const cmd = program
    .command('prune')
    .description('apply retention (RETENTION_DAYS, BACKUP_KEEP_MIN, GFS) locally and in the bucket; never removes the last good backups')
    .option('--dry-run', 'print every decision with its reason; delete nothing')
    .option('--json', 'print the decisions as JSON on stdout');
  addCommonOptions(cmd).action(async (flags: PruneFlags) => {
    const ctx = loadContext(flags, { openLogFile: !flags.dryRun });
    const results: { job: string; result: PruneResult }[] = [];
    // Deleting is cleanup, so a stop aborts only the listing; the grace bounds the rest.
    const stop = stopOnSignals(ctx.logger, 'prune');
    for (const job of ctx.jobs) {
      if (stop.signal.aborted) break;
      const storage = createStorage(job, { signal: stop.signal });
      const identity = await jobIdentity(job, { local: storage.local });
      const result = await prune({
        job,
        local: storage.local,
        remote: storage.remote,
        dryRun: Boolean(flags.dryRun),
        logger: ctx.logger,
        systemIdentifier: identity.systemIdentifier,
      });
      results.push({ job: job.name, result });
      if (!flags.json) process.stdout.write(describe(job.name, result));
    }
    stop.dispose();
    if (flags.json) writeJson(results.length === 1 ? results[0] : results);
    if (stop.signal.aborted) {
      process.stderr.write('pgbak: error: interrupted\n');
      process.exitCode = ExitCode.interrupted;
      return;
    }
    const errors = results.flatMap((r) => r.result.errors);
    if (errors.length > 0) {
      const e = new StorageError('prune-incomplete', `prune could not delete ${errors.length} item(s): ${errors[0]}`, {
        hint: 'the backups named were left in place (manifest first, so none is left half-deleted); check permissions and run prune again',
      });
      process.stderr.write(`pgbak: error: ${e.message}\nhint: ${e.hint}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    process.exitCode = ExitCode.ok;
  });
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
  for (const t of r.leftovers.tempFiles) lines.push(`  ${r.dryRun ? 'would remove' : 'removed'} temp file of a killed run: ${t.path} (${formatBytes(t.size)})`);
  for (const u of r.leftovers.uploads) lines.push(`  ${r.dryRun ? 'would abort' : 'aborted'} multipart upload of a killed run: ${u.key} (started ${u.initiated.toISOString()})`);
  return lines.join('\n') + '\n';
}
