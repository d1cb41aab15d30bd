import { Option, type Command } from '@commander-js/extra-typings';
import { list, type ListedBackup } from '../../api/index.js';
import { ok, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { loadContext, writeJson, type CommonFlags } from '../context.js';
import { addCommonOptions } from '../options.js';
import { table } from '../render.js';
import { stopOnSignals } from '../signals.js';
import { formatBytes, formatDuration } from '../../model/human-units.js';
import { out } from '../style.js';

interface ListFlags extends CommonFlags {
  local?: boolean;
  remote?: boolean;
  json?: boolean;
}

/** `pgbak list`: every backup of the jobs' directories and buckets, newest first. */
export function registerList(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('list')
    .description('list every backup in BACKUP_DIR and the bucket, newest first: size, encryption, where, state, last verification')
    .addOption(new Option('--local', 'only BACKUP_DIR').conflicts('remote'))
    .addOption(new Option('--remote', 'only the bucket'))
    .option('--json', 'print the list as JSON on stdout');
  addCommonOptions(cmd).action(async (flags: ListFlags) => {
    slot.outcome = await runListCommand(flags);
  });
}

async function runListCommand(flags: ListFlags): Promise<CommandOutcome> {
  const ctx = loadContext(flags, { openLogFile: false, allByDefault: true });
  const only = flags.local ? 'local' : flags.remote ? 'remote' : undefined;
  // Jobs sharing a directory and bucket are listed once.
  const seen = new Set<string>();
  const all: ListedBackup[] = [];
  const stop = stopOnSignals(ctx.logger, 'listing');
  try {
    for (const job of ctx.jobs) {
      const where = `${job.backupDir}\n${job.s3 ? `${job.s3.endpoint}/${job.s3.bucket}/${job.s3.prefix}` : ''}`;
      if (seen.has(where)) continue;
      seen.add(where);
      for (const b of await list({ job, only, signal: stop.signal, logger: ctx.logger }))
        if (!all.some((x) => x.name === b.name)) all.push(b);
    }
  } finally {
    stop.dispose();
  }
  all.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : a.name < b.name ? 1 : -1));
  if (flags.json) writeJson(all);
  else if (all.length === 0) process.stdout.write('no backups\n');
  else process.stdout.write(render(all));
  return ok;
}

function render(backups: readonly ListedBackup[]): string {
  const rows = backups.map((b) => [
    b.name,
    b.database ?? '-',
    b.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    formatBytes(b.size),
    b.encrypted ? 'yes' : 'no',
    b.where,
    b.state,
    b.verified
      ? `${b.verified.ok ? out().ok('ok') : out().fail('FAILED')} ${b.verified.kind} ${b.verified.verifiedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z')} (${formatDuration(b.verified.durationMs)})`
      : '-',
  ]);
  const problems = backups.filter((b) => b.problems.length).map((b) => `  ${b.name}: ${b.problems.join('; ')}`);
  return (
    table(['NAME', 'DATABASE', 'TIME', 'SIZE', 'ENCRYPTED', 'WHERE', 'STATE', 'LAST VERIFIED'], rows) +
    (problems.length ? `\nproblems:\n${problems.join('\n')}\n` : '')
  );
}
