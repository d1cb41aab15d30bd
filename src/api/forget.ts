import { closestNames } from '../catalog/find-backup.js';
import { listBackups } from '../catalog/catalog.js';
import { lastRunPrefixes, readLastRun, retire } from '../catalog/last-run.js';
import { filePrefixOf, type JobConfig } from '../config/job.js';
import { NotFoundError, UsageError } from '../errors/index.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { openStorage } from '../storage/job-storage.js';

/** Options of {@link forgetDatabase}. */
export interface ForgetOptions {
  /** Where the database's records are: BACKUP_DIR and the bucket. */
  readonly storage: Pick<JobConfig, 'backupDir' | 's3'>;
  /** The database as `pgbak status` names it. */
  readonly database: string;
  /** Databases of the configured jobs: those are backed up here and cannot be forgotten. */
  readonly configured?: readonly string[] | undefined;
  readonly logger?: Logger | undefined;
  readonly now?: Date | undefined;
}

/** What {@link forgetDatabase} did. */
export interface ForgetResult {
  readonly database: string;
  readonly filePrefix: string;
  readonly retiredAt: string;
  /** Where the retirement was recorded: local (BACKUP_DIR), remote (the bucket). */
  readonly locations: readonly ('local' | 'remote')[];
  /** The same places as paths and s3:// URLs. */
  readonly paths: readonly string[];
  /** Backups of the database left in place (retention of a job, or a person, removes them). */
  readonly backupsKept: number;
}

/**
 * `pgbak status --forget DB`: retire a database whose records should no longer count, such as
 * the last-run record of one run with a mistyped DATABASE_URL. Writes a retirement marker in
 * BACKUP_DIR and in the bucket and removes the last-run records there; its backups are kept.
 * `status` then no longer lists it, until a newer backup or run of it shows up.
 */
export async function forgetDatabase(options: ForgetOptions): Promise<ForgetResult> {
  const { database } = options;
  const logger = options.logger ?? silentLogger;
  if (options.configured?.includes(database)) {
    throw new UsageError(`${database} is a configured job's database: status keeps checking it while it is backed up here`, {
      hint: 'remove its job from the configuration (or DATABASE_URL) first, then forget it',
    });
  }
  const prefix = filePrefixOf(database);
  await using storage = openStorage(options.storage);
  const named = [['local', storage.local] as const, ...(storage.remote ? [['remote', storage.remote] as const] : [])];
  const backends = named.map(([, b]) => b);
  // Only this database's backups and records are read; the whole catalog only to name the closest when it is unknown.
  const own = await listBackups({ local: storage.local, remote: storage.remote, prefix });
  const backupsKept = own.filter((e) => e.state === 'good').length;
  let known = own.length > 0;
  for (const backend of backends) if (!known && (await readLastRun(backend, prefix))) known = true;
  if (!known) {
    const others = new Set<string>();
    for (const backend of backends) for (const p of await lastRunPrefixes(backend)) others.add(p);
    for (const e of await listBackups({ local: storage.local, remote: storage.remote })) others.add(e.prefix);
    const close = closestNames(prefix, [...others]);
    throw new NotFoundError(
      `no records of a database ${database} in ${backends.map((b) => b.location).join(' or ')}${close.length ? `; closest: ${close.join(', ')}` : ''}`,
      { hint: '`pgbak status` names the databases it knows' },
    );
  }
  const now = options.now ?? new Date();
  const locations: ('local' | 'remote')[] = [];
  const paths: string[] = [];
  for (const [where, backend] of named) {
    await retire(backend, database, prefix, now);
    locations.push(where);
    paths.push(backend.location);
  }
  logger.info('database retired', { database, paths: paths.join(', '), kept: backupsKept });
  return { database, filePrefix: prefix, retiredAt: now.toISOString(), locations, paths, backupsKept };
}
