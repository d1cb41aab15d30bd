import { InterruptedError, messageOf, type AppError } from '../errors/index.js';
import { formatBytes } from '../model/human-units.js';
import type { Logger } from '../logging/logger.js';
import type { StorageBackend } from '../storage/storage-backend.js';

/**
 * At the start of a backup (lock held): remove the temp files that killed runs (SIGKILL, the
 * OOM killer, a power loss) left in BACKUP_DIR, before this run needs their space. Each can be
 * as large as a whole dump and nothing else sees them. A failure here only warns: the backup
 * itself does not depend on it.
 */
export async function removeKilledRunTemps(local: StorageBackend, logger: Logger): Promise<void> {
  try {
    for (const t of (await local.removeStaleTemps?.()) ?? []) {
      logger.warn(`removed ${t.path} (${formatBytes(t.size)}), the temp file of a killed run (pid ${t.pid} is gone)`);
    }
  } catch (err) {
    logger.warn('could not remove the temp files of killed runs', { error: messageOf(err) });
  }
}

/**
 * A backup stopped by SIGINT/SIGTERM says what became of it: its partial files are removed
 * (temp files by the puts, stored files and multipart uploads by the run's cleanup; a removal
 * that fails is a warning of its own) and the earlier backups were never touched.
 */
export function explainInterrupted(e: AppError, name: string): AppError {
  if (e.code !== 'interrupted') return e;
  return new InterruptedError(e.message, {
    cause: e.cause,
    hint: `stopped by a signal: the partial files of ${name} were removed (a removal that failed is listed as a warning), and earlier backups are untouched`,
  });
}
