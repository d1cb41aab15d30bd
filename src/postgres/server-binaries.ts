import { existsSync, readdirSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { PgToolError } from '../errors/index.js';
import { childEnv } from '../pipeline/child-env.js';
import { execChild } from '../pipeline/child-stage.js';

/**
 * The bin directory of a PostgreSQL server of exactly `major` (a data directory only starts with
 * its own major): PG_DUMP_PATH's directory, PATH, then /usr/lib/postgresql/<major>/bin. Needs
 * `postgres` and `pg_ctl` there.
 */
export async function findServerBinaries(major: number, pgDumpPath?: string): Promise<string> {
  const dirs = [
    ...(pgDumpPath ? [existsSync(join(pgDumpPath, 'pg_ctl')) ? pgDumpPath : dirname(pgDumpPath)] : []),
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean),
    `/usr/lib/postgresql/${major}/bin`,
  ];
  const found: string[] = [];
  for (const dir of [...new Set(dirs)]) {
    if (!existsSync(join(dir, 'postgres')) || !existsSync(join(dir, 'pg_ctl'))) continue;
    try {
      const { stdout } = await execChild(join(dir, 'postgres'), ['--version'], { timeout: 15_000, env: childEnv() });
      const m = /\(PostgreSQL\)\s+(\d+)/.exec(stdout);
      if (m && Number(m[1]) === major) return dir;
      if (m) found.push(`${dir} (${m[1]})`);
    } catch {
      /* not a server binary */
    }
  }
  const installed = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').join(', ') : 'none';
  throw new PgToolError(
    `no PostgreSQL ${major} server (postgres and pg_ctl) was found${found.length ? `; found ${found.join(', ')}` : ''} (/usr/lib/postgresql: ${installed})`,
    { hint: `the restore test starts the base backup with its own major version: install postgresql-${major} on this host` },
  );
}
