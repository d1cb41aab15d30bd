import { Option, type Command } from '@commander-js/extra-typings';
import type { ListedBackup } from '../../api/index.js';
import { runCommand, type CommandOutcome, type OutcomeSlot } from '../outcome.js';
import { loadContext, type CommonFlags } from '../context.js';
import { addCommonOptions, addExamples } from '../options.js';
import { table } from '../render.js';
import { formatBytes, formatDuration, formatTime } from '../../model/human-units.js';
import { out } from '../style.js';

interface ListFlags extends CommonFlags {
  from?: 'local' | 'remote' | 'both';
  database?: string;
  json?: boolean;
}

/** `pgbak list`: every backup of the jobs' directories and buckets, newest first. */
export function registerList(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('list')
    .description('list every backup in BACKUP_DIR and the bucket, newest first: size, encryption, where, state, last verification')
    .addOption(
      new Option('--from <where>', 'read only BACKUP_DIR (local), only the bucket (remote), or both').choices([
        'local',
        'remote',
        'both',
      ] as const),
    )
    .option('--database <name>', 'only the backups of this database (a whole-server job backs up many)')
    .option('--json', 'print the list as JSON on stdout (docs/json.md)');
  addCommonOptions(cmd).action(async (flags: ListFlags) => {
    slot.outcome = await runCommand('list', flags.json, () => runListCommand(flags));
  });
  addExamples(cmd, [
    ['pgbak list', 'every backup of every job, local and in the bucket'],
    ['pgbak list --job shop --from local', "one job's backups in BACKUP_DIR only (works with the bucket down)"],
    ['pgbak list --json', 'the same as JSON, for scripts'],
    ['pgbak list --database crm', 'the backups of one database (of a whole-server job, BACKUP_DATABASES)'],
  ]);
}

/** Newest first; equal times by name, descending. */
function newestFirst(a: ListedBackup, b: ListedBackup): number {
  return a.time < b.time ? 1 : a.time > b.time ? -1 : a.name < b.name ? 1 : -1;
}

async function runListCommand(flags: ListFlags): Promise<CommandOutcome> {
  const { backupsOfDatabase, list, mergeListed, sameBackup } = await import('../../api/list.js');
  const { stopOnSignals } = await import('../signals.js');
  // Every job unless --job names one.
  const ctx = await loadContext(flags, { openLogFile: false, allByDefault: flags.job === undefined });
  const only = flags.from === 'both' ? undefined : flags.from;
  // Jobs sharing a directory and bucket prefix are read once.
  const seen = new Set<string>();
  const all: ListedBackup[] = [];
  const stop = stopOnSignals(ctx.logger, 'listing');
  try {
    for (const job of ctx.jobs) {
      const where = `${job.backupDir}\n${job.s3 ? `${job.s3.endpoint}/${job.s3.bucket}/${job.s3.prefix}` : ''}`;
      if (seen.has(where)) continue;
      seen.add(where);
      // Jobs sharing BACKUP_DIR but not the bucket prefix each see part of a backup: merge the parts.
      for (const b of await list({ job, only, signal: stop.signal, logger: ctx.logger })) {
        const i = all.findIndex((x) => sameBackup(x, b));
        if (i < 0) all.push(b);
        else all[i] = mergeListed(all[i]!, b);
      }
    }
  } finally {
    stop.dispose();
  }
  const shown = flags.database === undefined ? all : backupsOfDatabase(all, flags.database);
  shown.sort(newestFirst);
  if (!flags.json) process.stdout.write(shown.length === 0 ? 'no backups\n' : render(shown));
  return { exitCode: 0, errors: [], json: { results: shown } };
}

/** The WHERE column: local, remote, both or none. */
function whereOf(b: ListedBackup): string {
  // With a second target: BACKUP_DIR and each bucket target holding a good copy (local+primary+secondary).
  if (b.targets) return [...(b.locations.includes('local') ? ['local'] : []), ...b.targets].join('+') || 'none';
  return b.locations.length === 2 ? 'both' : (b.locations[0] ?? 'none');
}

function render(backups: readonly ListedBackup[]): string {
  const rows = backups.map((b) => [
    b.name,
    b.kind === 'base' ? '(base backup)' : (b.database ?? '-'),
    formatTime(b.time),
    formatBytes(b.sizeBytes),
    b.encrypted ? 'yes' : 'no',
    whereOf(b),
    b.state,
    b.verified
      ? `${b.verified.ok ? out().ok('ok') : out().fail('FAILED')} ${b.verified.kind} ${formatTime(b.verified.time)} (${formatDuration(b.verified.durationMs)})`
      : '-',
  ]);
  const problems = backups.filter((b) => b.problems.length).map((b) => `  ${b.name}: ${b.problems.join('; ')}`);
  const bases = backups.flatMap((b) =>
    b.base
      ? [`  ${b.name}: timeline ${b.base.timeline}, WAL ${b.base.startLsn} → ${b.base.stopLsn}, ended ${formatTime(b.base.stopTime)}`]
      : [],
  );
  return (
    table(['NAME', 'DATABASE', 'TIME', 'SIZE', 'ENCRYPTED', 'WHERE', 'STATE', 'LAST VERIFIED'], rows) +
    (bases.length ? `\nbase backups (point-in-time recovery):\n${bases.join('\n')}\n` : '') +
    (problems.length ? `\nproblems:\n${problems.join('\n')}\n` : '')
  );
}
