import type { S3Settings } from '../config/job.js';
import type { NotifySettings, WalSettings } from '../config/job-sections.js';
import type { JobStorage } from '../storage/job-storage.js';
import type { StorageBackend } from '../storage/storage-backend.js';

/**
 * What the WAL commands need of a job: where the archive lives, how it is encoded, and who hears
 * of a conflict. A job of the config file has it; so do bare storage settings (no DATABASE_URL:
 * archive_command and restore_command need no database).
 */
export interface WalJob {
  readonly backupDir: string;
  readonly s3: S3Settings | undefined;
  readonly wal: WalSettings;
  readonly gpgRecipient: string | undefined;
  readonly notify?: NotifySettings | undefined;
}

/**
 * The WAL archive's storage: the bucket when one is configured (a copy on the database host's own
 * disk protects against little), else BACKUP_DIR.
 */
export function walBackend(storage: JobStorage): StorageBackend {
  return storage.remote ?? storage.local;
}
