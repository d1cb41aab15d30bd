import type { CatalogEntry } from './catalog.js';

/**
 * The warning when a prefix holds backups of the same database name made on other servers (two
 * hosts, one bucket): they are never counted toward this job's BACKUP_KEEP_MIN, pruned, or picked
 * by its `restore --latest`, but sharing a prefix is easy to get wrong, so it is said. Undefined
 * when every backup of the database is the job's own (`mine` ⊇ `ofDatabase`).
 */
export function otherServersWarning(
  database: string,
  ofDatabase: readonly CatalogEntry[],
  mine: readonly CatalogEntry[],
  where: string,
): string | undefined {
  const own = new Set(mine.map((e) => e.name));
  const others = ofDatabase.filter((e) => !own.has(e.name) && e.systemIdentifier !== undefined);
  if (others.length === 0) return undefined;
  const servers = new Map<string, { count: number; host: string | undefined }>();
  for (const e of others) {
    const s = servers.get(e.systemIdentifier!) ?? { count: 0, host: e.manifest?.host };
    s.count++;
    servers.set(e.systemIdentifier!, s);
  }
  const list = [...servers].map(([id, s]) => `${s.count} from server ${id}${s.host ? ` (host ${s.host})` : ''}`).join(', ');
  return (
    `${where} also holds ${others.length} backup(s) of database ${database} made on another server: ${list}; ` +
    "they are not counted, pruned or restored as this job's. Give each server its own STORAGE_PREFIX"
  );
}
