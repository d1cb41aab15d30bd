import { chmod, writeFile } from 'node:fs/promises';
import { UsageError } from '../errors/index.js';
import { formatCompression } from '../config/parsers.js';
import type { WalJob } from './wal-job.js';

/**
 * The settings restore_command needs, in a file of their own beside the data directory
 * (`<pgdata>.pgbak-wal.env`, mode 0600, owned by the server user): the storage variables, the
 * WAL compression and GNUPGHOME, never the database URL. Not inside the data directory, so a
 * later base backup does not copy the storage keys; not in postgresql.auto.conf, which any
 * `SHOW restore_command` would print.
 */
export function walRestoreSettings(job: WalJob, pgdata: string): { path: string; write(): Promise<void> } {
  const path = `${pgdata.replace(/\/+$/, '')}.pgbak-wal.env`;
  const vars: Record<string, string | undefined> = {
    BACKUP_DIR: job.backupDir,
    LOG_FILE: '',
    WAL_COMPRESSION: formatCompression(job.wal.compression),
    GNUPGHOME: process.env.GNUPGHOME,
    ...(job.s3
      ? {
          STORAGE_ENDPOINT: job.s3.endpoint,
          STORAGE_ACCESS_KEY: job.s3.accessKeyId,
          STORAGE_SECRET_KEY: job.s3.secretAccessKey,
          STORAGE_BUCKET: job.s3.bucket,
          STORAGE_PREFIX: job.s3.prefix,
          STORAGE_REGION: job.s3.region,
          ...(job.s3.timeoutMs ? { STORAGE_TIMEOUT: `${Math.round(job.s3.timeoutMs / 1000)}s` } : {}),
        }
      : {}),
  };
  const lines = ['# pgbak: the WAL archive for restore_command (pgbak wal-fetch --env-file THIS-FILE %f %p)'];
  for (const [name, value] of Object.entries(vars)) {
    if (value === undefined) continue;
    if (/['\n]/.test(value)) throw new UsageError(`${name} holds a quote or a newline: it cannot be written to ${path}`);
    lines.push(`${name}='${value}'`);
  }
  return {
    path,
    async write() {
      await writeFile(path, lines.join('\n') + '\n', { mode: 0o600, flag: 'w' });
      await chmod(path, 0o600);
    },
  };
}
