import type { ServerChoice, ServerRunResult } from '../../api/server-run.js';
import type { JobConfig } from '../../config/job.js';
import { AppError, ExitCode } from '../../errors/index.js';
import type { BackupResult } from '../../model/backup-result.js';
import type { CommandOutcome } from '../outcome.js';
import { out } from '../style.js';

/**
 * The outcome of `pgbak backup` when a job backs up a whole server (BACKUP_DATABASES): the
 * summary of each server run (one line naming every database that failed), then each failed
 * database's own error. Exit 0 when every database is backed up, 3 (partial) when some failed,
 * the first failure's code when none was backed up, 130 when interrupted.
 */
export function serverBackupOutcome(
  servers: readonly ServerRunResult[],
  results: readonly BackupResult[],
  interrupted: boolean,
  json: boolean,
  toJson: (r: BackupResult) => Record<string, unknown>,
): CommandOutcome {
  if (!json) for (const s of servers) process.stdout.write(summaryText(s));
  const errors: AppError[] = [];
  for (const s of servers) {
    const e = s.summary.error;
    if (e) errors.push(new AppError(e.code, `[${s.summary.job}] ${e.message}`, { hint: e.hint, exitCode: e.exitCode }));
  }
  for (const r of results.filter((x) => x.status !== 'ok')) {
    if (!r.error) continue;
    const { code, message, hint, exitCode } = r.error;
    errors.push(new AppError(code, `[${r.database}] ${message}`, { hint, exitCode }));
  }
  const first = servers.map((s) => s.summary).find((s) => s.status !== 'ok');
  const exitCode = interrupted ? ExitCode.interrupted : errors.length === 0 ? ExitCode.ok : (first?.error?.exitCode ?? errors[0]!.exitCode);
  return {
    exitCode,
    errors,
    json: {
      extra: {
        dryRun: false,
        servers: servers.map((s) => ({
          job: s.summary.job,
          status: s.summary.status,
          databases: s.results.length,
          failed: s.results.filter((r) => r.status === 'failed').map((r) => r.database),
          globalsIn: s.globalsIn,
          excluded: s.excluded,
          warnings: s.warnings,
          durationMs: s.summary.durationMs,
        })),
      },
      results: results.map(toJson),
    },
  };
}

function summaryText(s: ServerRunResult): string {
  const ok = s.results.filter((r) => r.status === 'ok').length;
  const word = s.summary.status === 'ok' ? out().ok('ok') : s.summary.status === 'partial' ? out().warn('PARTIAL') : out().fail('FAILED');
  const lines = [
    `server backup ${word}: job ${s.summary.job}, ${ok} of ${s.results.length} databases backed up` +
      (s.excluded.length ? ` (excluded: ${s.excluded.join(', ')})` : ''),
    `  globals: ${s.globalsIn ? `in ${s.globalsIn}` : 'none stored this run'}`,
    ...s.results.filter((r) => r.status !== 'ok').map((r) => `  ${r.status.toUpperCase()}: ${r.database}: ${r.error?.message ?? ''}`),
    ...s.warnings.map((w) => `  warning: ${w}`),
  ];
  return lines.join('\n') + '\n';
}

/**
 * The head of `backup --dry-run` for a whole-server job: what a run would back up now (the
 * globals with the first), what it leaves out, each named database that would fail, the warnings.
 * The plan of each database follows it.
 */
export function serverPlanText(job: JobConfig, choice: ServerChoice): string {
  const selection = job.backup.databases;
  const asked = selection?.include === 'all' ? 'all' : (selection?.include ?? []).join(',');
  const lines = [
    `pgbak backup --dry-run: whole server, job ${job.name} (BACKUP_DATABASES=${asked}): ${choice.order.length} database${choice.order.length === 1 ? '' : 's'} to back up`,
    `  back up: ${choice.order.join(', ') || 'none'}`,
    ...(job.backup.globals && choice.order.length ? [`  globals: with ${choice.order[0]}`] : []),
    ...(choice.excluded.length ? [`  left out (BACKUP_EXCLUDE_DATABASES): ${choice.excluded.join(', ')}`] : []),
    ...choice.failures.map((f) => `  ${out().fail('FAIL')}: ${f.database}: ${f.error.message}`),
    ...choice.warnings.map((w) => `  warning: ${w}`),
  ];
  return lines.join('\n') + '\n';
}

/** `backup --dry-run`'s JSON of a whole-server job. */
export function serverPlanJson(job: JobConfig, choice: ServerChoice): Record<string, unknown> {
  return {
    job: job.name,
    databases: choice.order,
    globalsIn: job.backup.globals ? (choice.order[0] ?? null) : null,
    excluded: choice.excluded,
    failed: choice.failures.map((f) => ({ database: f.database, code: f.error.code, message: f.error.message })),
    warnings: choice.warnings,
  };
}
