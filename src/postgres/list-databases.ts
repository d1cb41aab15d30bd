import type { DatabaseSelection } from '../config/job-sections.js';
import { connect } from './connection.js';

/** The databases of a server, as a whole-server run sees them. */
export interface ServerDatabases {
  /** Those that may be backed up, sorted: neither a template nor refusing connections. */
  readonly usable: readonly string[];
  /** Templates (`datistemplate`) and databases that refuse connections (`datallowconn = false`): never backed up. */
  readonly unusable: readonly string[];
}

/** The databases of a server a whole-server run backs up, and what of its settings names nothing to back up. */
export interface DatabaseChoice {
  /** Names to back up, sorted. */
  readonly databases: readonly string[];
  /** Named in BACKUP_DATABASES but not on the server: each fails the run. */
  readonly missing: readonly string[];
  /** Named in BACKUP_DATABASES but a template or refusing connections: each fails the run. */
  readonly unusable: readonly string[];
  /** Left out by BACKUP_EXCLUDE_DATABASES. */
  readonly excluded: readonly string[];
  /** Named in BACKUP_EXCLUDE_DATABASES but not on the server (a typo would go unseen): a warning. */
  readonly unknownExcluded: readonly string[];
}

/** Every database of the server, split into those that may be backed up and the others, each sorted by name. */
export async function listDatabases(url: string): Promise<ServerDatabases> {
  const client = await connect(url);
  try {
    const { rows } = await client.query<{ datname: string; usable: boolean }>(
      'SELECT datname, NOT datistemplate AND datallowconn AS usable FROM pg_database ORDER BY datname COLLATE "C"',
    );
    return { usable: rows.filter((r) => r.usable).map((r) => r.datname), unusable: rows.filter((r) => !r.usable).map((r) => r.datname) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Apply BACKUP_DATABASES / BACKUP_EXCLUDE_DATABASES to the databases found on the server. */
export function chooseDatabases(found: ServerDatabases, selection: DatabaseSelection): DatabaseChoice {
  const exclude = new Set(selection.exclude);
  const wanted = selection.include === 'all' ? found.usable : [...new Set(selection.include)];
  const usable = new Set(found.usable);
  const unusable = new Set(found.unusable);
  const named = wanted.filter((d) => !exclude.has(d));
  return {
    databases: named.filter((d) => usable.has(d)).sort(),
    missing: named.filter((d) => !usable.has(d) && !unusable.has(d)),
    unusable: named.filter((d) => unusable.has(d)),
    excluded: wanted.filter((d) => exclude.has(d)),
    unknownExcluded: [...exclude].filter((d) => !usable.has(d) && !unusable.has(d)),
  };
}
