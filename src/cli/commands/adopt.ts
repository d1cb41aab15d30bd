import type { Command } from '@commander-js/extra-typings';
import type { AdoptRefusal, AdoptResult } from '../../api/index.js';
import { AppError, ExitCode, UsageError } from '../../errors/index.js';
import { formatBytes } from '../../model/human-units.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';

interface AdoptFlags extends CommonFlags {
  every?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

/** `pgbak adopt`: take foreign dumps into the catalog. */
export function registerAdopt(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('adopt')
    .description(
      "take foreign dumps (named like a backup, no manifest: the guide's script's, a manual pg_dump -Fc) into the catalog, so retention counts them; checks each copy and writes only its manifest",
    )
    .argument('[names...]', 'backup names (or file names) of foreign dumps to adopt')
    .option('--every', "adopt every foreign dump of the job's database")
    .option('--dry-run', 'read and check every copy, print what would be adopted; write nothing')
    .option('--json', 'print the result as JSON on stdout (docs/json.md)');
  addCommonOptions(cmd).action(async (names: string[], flags: AdoptFlags) => {
    slot.outcome = await runCommand('adopt', flags.json, () => runAdopt(names, flags), { dryRun: Boolean(flags.dryRun) });
  });
  addExamples(cmd, [
    ['pgbak adopt --every --dry-run', 'check every foreign dump of the database; write nothing'],
    ['pgbak adopt db_20260101_120000', 'adopt that dump (local and bucket copies)'],
    ['pgbak adopt --every --all', 'every foreign dump of every job of the config file'],
  ]);
}

/** A job's adoption as `adopt --json` prints it: `location`, `path`, `sizeBytes` like every other command. */
function adoptJson(r: AdoptResult): Record<string, unknown> {
  return {
    ...r,
    adopted: r.adopted.map(({ where, url, size, manifestUrl, ...a }) => ({
      ...a,
      location: where,
      path: url,
      sizeBytes: size,
      manifestPath: manifestUrl,
    })),
    refused: r.refused.map(({ where, url, hint, ...x }) => ({ ...x, location: where ?? null, path: url ?? null, hint: hint ?? null })),
    skipped: r.skipped.map(({ where, ...x }) => ({ ...x, location: where ?? null })),
  };
}

/** A refused copy as the error main renders (its message and hint, as adopt reported them). */
function refusalError(r: AdoptRefusal): AppError {
  return new AppError(r.code, r.message, { hint: r.hint, exitCode: r.exitCode });
}

async function runAdopt(names: readonly string[], flags: AdoptFlags): Promise<CommandOutcome> {
  const [{ adopt }, { openStorage }] = await Promise.all([import('../../api/adopt.js'), import('../../api/job-storage.js')]);
  const { stopOnSignals } = await import('../signals.js');
  if (names.length && flags.every) throw new UsageError('give backup NAMEs or --every, not both');
  if (!names.length && !flags.every) {
    throw new UsageError('adopt what? give the NAMEs of foreign dumps, or --every', {
      hint: '`pgbak list` shows them in state foreign; `pgbak adopt --every --dry-run` checks them all without writing',
    });
  }
  const ctx = await loadContext(flags, { openLogFile: !flags.dryRun });
  if (names.length && ctx.jobs.length > 1) throw new UsageError('a backup NAME belongs to one job: choose it with --job NAME');
  const stop = stopOnSignals(ctx.logger, 'adoption');
  const results: AdoptResult[] = [];
  try {
    for (const job of ctx.jobs) {
      await using storage = openStorage(job, { signal: stop.signal });
      const result = await adopt({
        job,
        local: storage.local,
        remote: storage.remote,
        names,
        all: Boolean(flags.every),
        dryRun: Boolean(flags.dryRun),
        logger: ctx.logger,
        signal: stop.signal,
      });
      results.push(result);
      if (!flags.json) process.stdout.write(describe(result));
    }
  } finally {
    stop.dispose();
  }
  const errors = results.flatMap((r) => r.refused.map(refusalError));
  return {
    exitCode: results.find((r) => r.exitCode !== ExitCode.ok)?.exitCode ?? ExitCode.ok,
    errors,
    json: { extra: { dryRun: Boolean(flags.dryRun) }, results: results.map(adoptJson) },
  };
}

function describe(r: AdoptResult): string {
  const would = r.dryRun ? 'would adopt' : 'adopted';
  const lines = r.adopted.map(
    (a) =>
      `${would} ${a.name} (${a.where}, ${formatBytes(a.size)}, sha256 ${a.sha256}${a.encrypted ? `, gpg to ${a.manifest.encryption?.method === 'gpg' ? a.manifest.encryption.fingerprint : 'unknown'}` : ''})`,
  );
  for (const s of r.skipped) lines.push(`skipped ${s.name}${s.where ? ` (${s.where})` : ''}: ${s.reason}`);
  const names = new Set(r.adopted.map((a) => a.name)).size;
  const refusedNames = new Set(r.refused.map((x) => x.name)).size;
  const summary =
    r.adopted.length === 0 && r.refused.length === 0
      ? `adopt ${r.job}: nothing ${r.dryRun ? 'would be ' : ''}adopted${r.skipped.length ? '' : ` (no foreign dumps of ${r.database}, file prefix ${r.prefix})`}`
      : `adopt ${r.job}: ${would} ${r.adopted.length} cop${r.adopted.length === 1 ? 'y' : 'ies'} of ${names} backup(s)${refusedNames ? `; refused ${refusedNames} backup(s) (see below)` : ''}${r.dryRun ? ' (dry run: nothing written)' : ''}`;
  lines.push(summary);
  return lines.join('\n') + '\n';
}
