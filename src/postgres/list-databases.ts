import type { DatabaseSelection } from '../config/job-sections.js';
import { connect } from './connection.js';

/** The databases of a server a whole-server run backs up, and those it was told to but cannot find. */
export interface DatabaseChoice {
  /** Names to back up, sorted. */
  readonly databases: readonly string[];
  /** Named in BACKUP_DATABASES but not on the server (or a template, or refusing connections): each fails the run. */
  readonly missing: readonly string[];
  /** Left out by BACKUP_EXCLUDE_DATABASES. */
  readonly excluded: readonly string[];
}

/**
 * The databases that may be backed up: never a template (`datistemplate`) nor one that refuses
 * connections (`datallowconn = false`, as template0), sorted by name.
 */
export async function listDatabases(url: string): Promise<string[]> {
  const client = await connect(url);
  try {
    const { rows } = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname COLLATE "C"',
    );
    return rows.map((r) => r.datname);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Apply BACKUP_DATABASES / BACKUP_EXCLUDE_DATABASES to the databases found on the server. */
export function chooseDatabases(found: readonly string[], selection: DatabaseSelection): DatabaseChoice {
  const exclude = new Set(selection.exclude);
  const wanted = selection.include === 'all' ? found : [...new Set(selection.include)];
  const present = new Set(found);
  return {
    databases: wanted.filter((d) => present.has(d) && !exclude.has(d)).sort(),
    missing: wanted.filter((d) => !present.has(d) && !exclude.has(d)),
    excluded: wanted.filter((d) => exclude.has(d)),
  };
}
