import { CatalogSource, closestNames, shownName } from '../catalog/find-backup.js';
import type { JobConfig } from '../config/job.js';
import { messageOf } from '../errors/error-message.js';
import { UsageError } from '../errors/index.js';
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

/** The database names of some units, for a message: `a, b, c` (the first 30, then how many more). */
function namesOf(units: readonly JobConfig[]): string {
  const names = units.map((u) => u.database);
  return names.length > 30 ? `${names.slice(0, 30).join(', ')} … (${names.length - 30} more)` : names.join(', ') || 'none';
}

/**
 * `restore`/`verify`/`list --database NAME`: the one-database units of `jobs` (whole-server jobs
 * expanded, see {@link expandServerJobs}) whose database is `database`. Unknown: a usage error
 * naming the databases the jobs back up (those on the server now and those in storage).
 */
export async function unitsOfDatabase(
  jobs: readonly JobConfig[],
  database: string,
  options: { discover: boolean; logger?: Logger | undefined },
): Promise<JobConfig[]> {
  const units = jobs.some((j) => j.backup.databases) ? await expandServerJobs(jobs, options) : [...jobs];
  const picked = units.filter((u) => u.database === database);
  if (picked.length > 0) return picked;
  const near = closestNames(
    database,
    units.map((u) => u.database),
    1,
  );
  throw new UsageError(
    `--database ${shownName(database)}: no such database in ${jobs.length === 1 ? `job ${jobs[0]!.name}` : 'these jobs'}`,
    {
      hint: `the databases backed up: ${namesOf(units)}${near.length ? `; did you mean ${near[0]}?` : ''}`,
    },
  );
}

/**
 * The one-database unit `restore` acts on. A one-database job is itself. A whole-server job is
 * the unit of `database` (--database), else of the backup `name`'s database; with neither (`--latest`
 * alone), a usage error naming its databases: which one is the operator's choice, never a guess.
 */
export async function restoreUnit(
  job: JobConfig,
  o: { database?: string | undefined; name?: string | undefined; logger?: Logger | undefined },
): Promise<JobConfig> {
  if (o.database !== undefined) return (await unitsOfDatabase([job], o.database, { discover: true, logger: o.logger }))[0]!;
  if (!job.backup.databases) return job;
  const units = await expandServerJobs([job], { discover: true, logger: o.logger });
  if (o.name !== undefined) {
    const base = o.name.replace(/^.*\//, '');
    const own = units.find((u) => base.startsWith(`${u.filePrefix}_`) && /^\d{8}_\d{6}/.test(base.slice(u.filePrefix.length + 1)));
    if (own) return own;
    return job;
  }
  throw new UsageError(`job ${job.name} backs up ${units.length} databases (BACKUP_DATABASES): choose one with --database NAME`, {
    hint: `its databases: ${namesOf(units)}; \`pgbak restore --all-databases\` restores them all`,
  });
}
