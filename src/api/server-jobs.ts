import { CatalogSource } from '../catalog/find-backup.js';
import type { JobConfig } from '../config/job.js';
import { messageOf } from '../errors/error-message.js';
import type { Logger } from '../logging/logger.js';
import { chooseDatabases, listDatabases } from '../postgres/list-databases.js';
import { openStorage } from '../storage/job-storage.js';
import { databaseJob } from './server-run.js';

/**
 * `status`, `prune` and `verify` act on each database of a whole-server job (BACKUP_DATABASES)
 * as on a one-database job: this turns such a job into its database units — the databases the
 * job's server runs stored backups of, and (with `discover`) the databases on the server now, so
 * a database with no backup yet shows as stale. Other jobs are returned as they are.
 */
export async function expandServerJobs(
  jobs: readonly JobConfig[],
  options: {
    discover: boolean;
    logger?: Logger | undefined /** Add the databases found in storage (default true). */;
    fromStorage?: boolean;
  },
): Promise<JobConfig[]> {
  const out: JobConfig[] = [];
  for (const job of jobs) {
    if (!job.backup.databases) {
      out.push(job);
      continue;
    }
    const names = new Set<string>();
    if (options.discover) {
      try {
        for (const d of chooseDatabases(await listDatabases(job.databaseUrl), job.backup.databases).databases) names.add(d);
      } catch (err) {
        options.logger?.warn(`job ${job.name}: the server's databases could not be listed; using the databases in storage`, {
          error: messageOf(err),
        });
      }
    }
    if (options.fromStorage !== false) {
      await using storage = openStorage(job);
      const source = new CatalogSource({ local: storage.local, remote: storage.remote });
      for (const e of await source.list()) {
        if (e.manifest?.serverRun?.job === job.name) names.add(e.manifest.database);
      }
      for (const w of source.warnings) options.logger?.warn(w);
    }
    for (const d of [...names].sort()) out.push(databaseJob(job, d, undefined, d === job.database));
  }
  return out;
}
