import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, spawnCli } from '../helpers/cli.js';
import { bigTableSql, children, connectsToDatabase } from '../helpers/processes.js';
import { createBucket, createDatabase, pgUrl, tempDir } from '../helpers/services.js';

/** Enough rows that pg_dump → zstd → gpg runs for a few seconds, long enough to look at. */
const BIG_SQL = bigTableSql(400_000);

/** The environment of a running process, NAME=value each; undefined once it is gone. */
function environOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

describe("the environment of pgbak's children", () => {
  let db: string;
  let bucket: string;
  beforeAll(async () => {
    db = await createDatabase('env', BIG_SQL);
    bucket = await createBucket('childenv');
  });

  it('pg_dump, zstd and gpg get no STORAGE_*, AWS_*, DATABASE_URL or other secrets (sampled from /proc while they run)', async () => {
    const dir = tempDir();
    const env = backupEnv({
      database: db,
      dir,
      bucket,
      encrypt: true,
      extra: {
        BACKUP_COMPRESSION: 'zstd:3',
        STORAGE_PREFIX: 'childenv/',
        VERIFY_DATABASE_URL: pgUrl('postgres'),
        // What a host often has in its environment too.
        AWS_ACCESS_KEY_ID: 'AKIAHOSTKEY',
        AWS_SECRET_ACCESS_KEY: 'host-aws-secret-value',
        LC_ALL: 'C.UTF-8',
      },
    });
    expect(env.STORAGE_SECRET_KEY).toBeTruthy();
    const run = spawnCli(['backup', '--no-prune'], { env });
    const seen = new Map<number, { comm: string; environ: string[]; connects: boolean }>(); // by pid
    const sample = async () => {
      for (const [pid, comm] of await children(run.child.pid!)) {
        if (!['pg_dump', 'pg_dumpall', 'zstd', 'gpg'].includes(comm)) continue;
        // Tools that connect have --dbname= (unlike the `pg_dump --version` probes, also checked).
        const connects = connectsToDatabase(pid);
        const environ = environOf(pid);
        if (environ && environ.length > 0) seen.set(pid, { comm, environ, connects });
      }
    };
    let done = false;
    const result = run.done.then((r) => ((done = true), r));
    while (!done) {
      await sample();
      await new Promise((r) => setTimeout(r, 20));
    }
    const r = await result;
    expect(r.code, r.stderr).toBe(0);
    expect([...new Set([...seen.values()].map((s) => s.comm))]).toEqual(expect.arrayContaining(['gpg', 'pg_dump', 'zstd']));
    expect([...seen.values()].some((s) => s.comm === 'pg_dump' && s.connects)).toBe(true);

    for (const { comm, environ, connects } of seen.values()) {
      const names = environ.map((e) => e.slice(0, e.indexOf('=')));
      const forbidden = names.filter((n) => /^(STORAGE_|AWS_|NOTIFY_)/.test(n) || n === 'DATABASE_URL' || n === 'VERIFY_DATABASE_URL');
      expect(forbidden, `${comm} has ${forbidden.join(', ')}`).toEqual([]);
      expect(environ.join('\n'), comm).not.toContain(env.STORAGE_SECRET_KEY!);
      expect(environ.join('\n'), comm).not.toContain('host-aws-secret-value');
      // What children do need still reaches them.
      expect(names, comm).toEqual(expect.arrayContaining(['PATH', 'HOME', 'GNUPGHOME', 'LC_ALL']));
      // The database password only where a connection is made, set by that stage.
      if (connects) expect(names, comm).toContain('PGPASSWORD');
      else expect(names, comm).not.toContain('PGPASSWORD');
    }
  });
});
