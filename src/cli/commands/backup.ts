import type { Command } from '@commander-js/extra-typings';
import { backup, type BackupOptions } from '../../api/backup.js';
import type { BackupResult } from '../../model/backup-result.js';
import { planBackup } from '../../api/plan.js';
import { ExitCode } from '../../errors/index.js';
import { loadContext, writeJson, type CommonFlags } from '../context.js';
import { createProgress } from '../progress.js';
import { stopOnSignals } from '../signals.js';
import { renderError } from '../render.js';
import { addCommonOptions } from '../options.js';
import { runAfterBackup } from '../../api/after-backup.js';
import { reportStart } from '../../api/report-run.js';
import { formatBytes, formatDuration } from '../../model/human-units.js';

interface BackupFlags extends CommonFlags {
  dryRun?: boolean;
  upload?: boolean;
  encrypt?: boolean;
  prune?: boolean;
  json?: boolean;
}

export function registerBackup(program: Command): void {
  const cmd = program
    .command('backup', { isDefault: false })
    .description('back up the database: pg_dump → [gpg] → BACKUP_DIR + s3://STORAGE_BUCKET/backups/, manifest last')
    .option('--dry-run', 'check everything (pg_dump, gpg key, database, bucket) and print the plan; change nothing')
    .option('--no-upload', 'keep the backup local only')
    .option('--no-encrypt', 'do not encrypt, even when GPG_RECIPIENT is set')
    .option('--no-prune', 'do not apply retention after a successful backup')
    .option('--json', 'print the result as JSON on stdout');
  addCommonOptions(cmd).action(async (flags: BackupFlags) => {
    process.exitCode = await runBackupCommand(flags);
  });
}

async function runBackupCommand(flags: BackupFlags): Promise<number> {
  const ctx = loadContext(flags, { openLogFile: !flags.dryRun });
  if (flags.dryRun) {
    let code: number = ExitCode.ok;
    const plans = [];
    for (const job of ctx.jobs) {
      const plan = await planBackup({ job, upload: flags.upload !== false, encrypt: flags.encrypt !== false });
      plans.push(plan);
      if (!flags.json) process.stdout.write(plan.text);
      if (plan.error && code === ExitCode.ok) code = plan.error.exitCode;
    }
    if (flags.json) writeJson(ctx.jobs.length === 1 ? plans[0]!.data : plans.map((p) => p.data));
    if (code !== ExitCode.ok) {
      const first = plans.find((p) => p.error)!.error!;
      renderError(first);
    }
    return code;
  }

  const controller = stopOnSignals(ctx.logger, 'backup');
  const results: BackupResult[] = [];
  const concurrency = Math.max(1, ctx.global.BACKUP_CONCURRENCY);
  const queue = [...ctx.jobs];
  const progress = ctx.jobs.length === 1 && !flags.json ? createProgress(ctx.logger) : undefined;
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const options: BackupOptions = {
        job,
        upload: flags.upload !== false,
        encrypt: flags.encrypt !== false,
        logger: ctx.logger,
        signal: controller.signal,
        ...(progress ? { onProgress: (p) => progress.update(p) } : {}),
      };
      await reportStart({ job, logger: ctx.logger });
      const result = await backup(options);
      progress?.stop();
      results.push(await runAfterBackup({ job, result, logger: ctx.logger, prune: flags.prune !== false, signal: controller.signal }));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, ctx.jobs.length) }, worker));
  } finally {
    controller.dispose();
  }

  if (flags.json) writeJson(ctx.jobs.length === 1 ? results[0] : results);
  else for (const r of results) process.stdout.write(describe(r));
  const failed = results.filter((r) => r.status !== 'ok');
  if (failed.length === 0) return ExitCode.ok;
  if (ctx.jobs.length > 1) {
    process.stderr.write(`pgbak: error: ${failed.length} of ${results.length} backups failed: ${failed.map((r) => r.job).join(', ')}\n`);
  }
  for (const r of failed) {
    if (r.error) {
      process.stderr.write(`pgbak: error: ${ctx.jobs.length > 1 ? `[${r.job}] ` : ''}${r.error.message}\n`);
      if (r.error.hint) process.stderr.write(`hint: ${r.error.hint}\n`);
    }
  }
  if (controller.signal.aborted) return ExitCode.interrupted;
  return failed[0]!.error?.exitCode ?? ExitCode.failure;
}

function describe(r: BackupResult): string {
  if (r.status === 'failed') return `backup FAILED: ${r.job} after ${formatDuration(r.durationMs)}\n`;
  const lines = [
    `backup ${r.status === 'ok' ? 'ok' : 'PARTIAL (local copy only)'}: ${r.name} (${formatBytes(r.sizeBytes ?? 0)}, ${formatDuration(r.durationMs)}${r.encrypted ? ', encrypted' : ''})`,
    ...r.locations.map((l) => `  ${l}`),
    `  sha256 ${r.sha256}`,
    ...r.warnings.map((w) => `  warning: ${w}`),
  ];
  return lines.join('\n') + '\n';
}
