import type { Command } from '@commander-js/extra-typings';
import type { RecoveryKitResult } from '../../api/index.js';
import { ExitCode, resultError } from '../../errors/index.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';

interface KitFlags extends CommonFlags {
  json?: boolean;
}

/** `pgbak recovery-kit DIR`: a README and SHA256SUMS that restore the newest good backups with standard tools only. */
export function registerRecoveryKit(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('recovery-kit')
    .description(
      'write DIR/README.md and DIR/SHA256SUMS: the exact aws/mc, sha256sum, age/gpg, zstd, psql and pg_restore commands that restore the newest good backup of each job without pgbak; no secrets',
    )
    .argument('<dir>', 'directory to write the kit into (created when missing)')
    .option('--json', 'print what the kit holds as JSON on stdout (docs/json.md)');
  addCommonOptions(cmd).action(async (dir: string, flags: KitFlags) => {
    slot.outcome = await runCommand('recovery-kit', flags.json, () => runRecoveryKit(dir, flags));
  });
  addExamples(cmd, [
    ['pgbak recovery-kit /mnt/usb/pgbak-kit', 'every job of the config file (or the one job of the environment)'],
    ['pgbak recovery-kit kit --job shop', 'one job only'],
    ['pgbak recovery-kit kit --json', "also print each job's backup and files as JSON"],
  ]);
}

async function runRecoveryKit(dir: string, flags: KitFlags): Promise<CommandOutcome> {
  const { recoveryKit } = await import('../../api/recovery-kit.js');
  const ctx = await loadContext(flags, { openLogFile: false, allByDefault: true });
  const r = await recoveryKit({ jobs: ctx.jobs, dir, logger: ctx.logger });
  if (!flags.json) process.stdout.write(describe(r));
  const errors = r.jobs.flatMap((j) => (j.error ? [j.error] : []));
  const results = r.jobs.map((j) => ({
    job: j.job,
    database: j.database,
    name: j.name ?? null,
    time: j.time ?? null,
    source: j.source ?? null,
    files: j.files,
    error: j.error ? resultError(j.error) : null,
  }));
  return {
    exitCode: errors[0]?.exitCode ?? ExitCode.ok,
    errors,
    json: { results, extra: { dir: r.dir, readme: r.readme, sha256sums: r.sha256sums } },
  };
}

function describe(r: RecoveryKitResult): string {
  const lines = r.jobs.map((j) =>
    j.name
      ? `${j.job}: ${j.name} (${j.time}) from ${j.source === 'remote' ? 'the bucket' : 'BACKUP_DIR'}, ${j.files.length} files`
      : `${j.job}: NO good backup — ${j.error?.message ?? 'unknown'}`,
  );
  return `recovery kit written to ${r.dir}: README.md, SHA256SUMS\n${lines.map((l) => `  ${l}\n`).join('')}`;
}
