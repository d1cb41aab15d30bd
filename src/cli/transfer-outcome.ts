import { AppError, ExitCode } from '../errors/index.js';
import type { BackupResult } from '../model/backup-result.js';

/** One backup of `pgbak upload` or `pgbak copy`: its name, what happened, and the failure if any. */
interface TransferItem {
  readonly name: string;
  readonly status: string;
  readonly error?: BackupResult['error'];
}

/**
 * The errors and exit code of an upload or copy: one AppError per failed backup (its own cause,
 * hint and exit code, else a partial run's), the first failure's exit code, 0 when none failed.
 */
export function transferOutcome(items: readonly TransferItem[], what: 'upload' | 'copy'): { errors: AppError[]; exitCode: number } {
  const failed = items.filter((i) => i.status === 'failed');
  const errors = failed.map(
    (i) =>
      new AppError(i.error?.code ?? what, i.error?.message ?? `${i.name}: ${what} failed`, {
        hint: i.error?.hint,
        exitCode: i.error?.exitCode ?? ExitCode.partial,
      }),
  );
  return { errors, exitCode: failed[0]?.error?.exitCode ?? (failed.length ? ExitCode.partial : ExitCode.ok) };
}
