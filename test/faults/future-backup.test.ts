import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { timestampOf } from '../../src/catalog/backup-name.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { cloneLocal } from '../helpers/clone-backup.js';
import { createDatabase, services, sql, tempDir, uniqueId } from '../helpers/services.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';

const DAY = 86_400_000;

/**
 * Fault run case 18c / F7: a backup dated 200 days ahead (made while the clock was ahead) must
 * never be "latest", and a failed last run makes `status` exit 12 whatever good backup is dated
 * after it.
 */
describe('a backup dated in the future (F7)', () => {
  it('restore --latest restores the real newest backup; status exits 12 after a failed run', async () => {
    const db = await createDatabase(
      'c18c',
      `CREATE TABLE customers (id serial PRIMARY KEY, email text); INSERT INTO customers (email) SELECT 'c' || g || '@x.test' FROM generate_series(1, 200) g;`,
    );
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, extra: { BACKUP_PRUNE: 'false' } });
    const first = await runCli(['backup', '--json'], { env });
    expect(first.code, first.stderr).toBe(0);
    const firstName = jsonResult(first.stdout).name as string;

    // clone.py … -200: the same files under a name and startedAt 200 days ahead.
    const ahead = new Date(Date.now() + 200 * DAY);
    const futureName = `${db}_${timestampOf(ahead)}`;
    cloneLocal(join(dir, 'backups'), firstName, futureName, (m) => {
      m.startedAt = ahead.toISOString();
    });
    const listed = jsonResults((await runCli(['list', '--json'], { env })).stdout);
    expect(listed[0]).toMatchObject({ name: futureName, state: 'good' });

    await new Promise((r) => setTimeout(r, 1100));
    await sql(db, `INSERT INTO customers (email) VALUES ('new@x.test')`);
    const second = await runCli(['backup', '--json'], { env });
    expect(second.code, second.stderr).toBe(0);
    const newest = jsonResult(second.stdout).name as string;

    const target = `c18c_t_${uniqueId()}`;
    const r = await runCli(['restore', '--latest', '--target', target, '--create', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const result = jsonResult(r.stdout);
    expect(result.name).toBe(newest);
    expect(await sql(target, `SELECT count(*) FROM customers WHERE email = 'new@x.test'`)).toBe('1');
    expect(result.warnings).toEqual([
      expect.stringMatching(new RegExp(`^${futureName} is dated .* ahead of this host's clock \\(made while the clock was ahead\\?\\)`)),
    ]);
    expect(r.stderr).toMatch(/WARN .*made while the clock was ahead\?/);

    // verify without a name passes the future one over too.
    const v = await runCli(['verify', '--json'], { env });
    expect(v.code, v.stderr).toBe(0);
    expect(jsonResults(v.stdout)[0].name).toBe(newest);

    const { pg } = services();
    const bad = await runCli(['backup'], {
      env: { ...env, DATABASE_URL: `postgresql://${pg.user}:wrong-pw-5678@${pg.host}:${pg.port}/${db}` },
    });
    expect(bad.code).toBe(5);
    const s = await runCli(['status', '--json'], { env });
    expect(s.code, s.stdout + s.stderr).toBe(12);
    const d = jsonResults(s.stdout)[0];
    expect(d.newestGood).toMatchObject({ name: newest });
    expect(d.newestGood.ageMs).toBeLessThan(10 * 60_000);
    expect(d.reasons).toEqual([expect.stringMatching(/^last run failed at \S+: authentication failed/)]);
    expect(d.warnings).toEqual([expect.stringMatching(new RegExp(`^${futureName} is dated .*made while the clock was ahead\\?`))]);
    expect(s.stderr).not.toContain('wrong-pw-5678');
  });
});
