import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { measure } from './measure.js';
import { pgbakBackup, pgEnv, result, type BenchContext, type Scenario } from './scenarios.js';

/**
 * BACKUP_JOBS (issue 16 §2): pgbak backup with one custom-format stream against a directory-format
 * dump with 2 jobs, at the same compression (gzip:9, the default), and the bare directory dumps
 * that split the time: -Z0 (COPY alone) and -Z9 (COPY + compression, no gpg, no upload).
 */
export function jobsScenarios(): Scenario[] {
  const bareDir = (jobs: number, level: number): Scenario => ({
    id: `dir_j${jobs}_Z${level}`,
    title: `bare pg_dump -Fd -j ${jobs} -Z${level} -f dir`,
    command: `pg_dump -Fd -j ${jobs} -Z${level} -f dir`,
    async run(c: BenchContext) {
      const parent = mkdtempSync(join(c.scratch, 'dir-'));
      const out = join(parent, 'dump');
      const m = await measure(
        { command: join(c.pg.bindir, 'pg_dump'), args: ['-Fd', '-j', String(jobs), `-Z${level}`, '-f', out], env: pgEnv(c) },
        c.scratch,
      );
      rmSync(parent, { recursive: true, force: true });
      return result(m, 0);
    },
  });
  return [
    {
      id: 'jobs1',
      title: 'pgbak backup, gzip:9 + gpg + upload, BACKUP_JOBS unset (one custom-format stream)',
      command: 'BACKUP_COMPRESSION=gzip:9 GPG_RECIPIENT=… STORAGE_…=… pgbak backup',
      run: async (c) => (await pgbakBackup(c, 'gzip:9')).r,
    },
    {
      id: 'jobs2',
      title: 'pgbak backup, gzip:9 + gpg + upload, BACKUP_JOBS=2 (directory format, 2 pg_dump jobs)',
      command: 'BACKUP_JOBS=2 BACKUP_COMPRESSION=gzip:9 GPG_RECIPIENT=… STORAGE_…=… pgbak backup',
      run: async (c) => (await pgbakBackup(c, 'gzip:9', { BACKUP_JOBS: '2' })).r,
    },
    bareDir(1, 0),
    bareDir(2, 0),
    bareDir(1, 9),
    bareDir(2, 9),
  ];
}
