import type { BackupIdentity } from '../catalog/catalog.js';
import { readLastRun } from '../catalog/last-run.js';
import type { JobConfig } from '../config/job.js';
import { connect, systemIdentifierOf } from '../postgres/connection.js';
import type { StorageBackend } from '../storage/storage-backend.js';

export type { BackupIdentity } from '../catalog/catalog.js';

/** A job's identity and where its server part came from. */
export interface JobIdentity extends BackupIdentity {
  /** server: read from the database now; last-run: this host's last backup run; unknown: neither. */
  readonly source: 'server' | 'last-run' | 'unknown';
}

/**
 * Whose backups a job's commands may use: its database, and its server's system identifier read
 * from the server itself, or — when the server is down (a disaster restore) or not to be contacted
 * (`status` reads storage only) — from this host's last-run record in BACKUP_DIR.
 */
export async function jobIdentity(
  job: Pick<JobConfig, 'database' | 'filePrefix'> & { readonly databaseUrl?: string | undefined },
  options: { local?: StorageBackend | undefined; askServer?: boolean } = {},
): Promise<JobIdentity> {
  if (options.askServer !== false && job.databaseUrl) {
    try {
      const client = await connect(job.databaseUrl);
      try {
        const id = await systemIdentifierOf(client);
        if (id) return { database: job.database, systemIdentifier: id, source: 'server' };
      } finally {
        await client.end().catch(() => undefined);
      }
    } catch {
      /* the server is down or refuses us: fall back to what this host recorded */
    }
  }
  if (options.local) {
    const record = await readLastRun(options.local, job.filePrefix).catch(() => undefined);
    const id = record?.result.systemIdentifier;
    if (id && record.database === job.database) return { database: job.database, systemIdentifier: id, source: 'last-run' };
  }
  return { database: job.database, systemIdentifier: undefined, source: 'unknown' };
}
