import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { createBucket, createDatabase, SAMPLE_SQL, sql, tempDir, uniqueId } from '../helpers/services.js';
import { linesMatching } from './fault-helpers.js';
import { jsonResult, jsonResults } from '../helpers/json-schemas.js';

const WARNING = /the bucket .* cannot be read .*as with --from local/;

/**
 * Fault run case 16c / M3: with the bucket unreachable, restore, list, verify and status go on
 * with BACKUP_DIR alone, say so once, and exit as if the local copies were all there is.
 */
describe('bucket down: the local copies, with one warning (M3)', () => {
  let db: string;
  let dir: string;
  let name: string;
  let down: NodeJS.ProcessEnv;

  beforeAll(async () => {
    db = await createDatabase('c16', SAMPLE_SQL);
    const bucket = await createBucket('c16');
    dir = tempDir();
    const env = backupEnv({ database: db, dir, bucket });
    const b = await runCli(['backup', '--json', '--no-prune'], { env });
    expect(b.code, b.stderr).toBe(0);
    name = jsonResult(b.stdout).name;
    down = { ...env, STORAGE_ENDPOINT: 'http://127.0.0.1:1' };
  });

  it('restore --latest restores the local copy and exits 0', async () => {
    const target = `c16_dr_${uniqueId()}`;
    const r = await runCli(['restore', '--latest', '--target', target, '--create', '--json'], { env: down });
    expect(r.code, r.stderr).toBe(0);
    const result = jsonResult(r.stdout);
    expect(result).toMatchObject({ name, locations: ['local'] });
    expect(linesMatching(r.stderr, WARNING)).toHaveLength(1);
    expect(linesMatching(r.stderr, WARNING)[0]).toMatch(/S3 endpoint unreachable/);
    expect(result.warnings).toEqual([expect.stringMatching(WARNING)]);
    expect(await sql(target, 'SELECT count(*) FROM customers')).toBe('500');
  });

  it('list and verify use BACKUP_DIR alone with one warning; status too', async () => {
    const list = await runCli(['list', '--json'], { env: down });
    expect(list.code, list.stderr).toBe(0);
    expect(jsonResults(list.stdout)).toEqual([expect.objectContaining({ name, locations: ['local'], state: 'good' })]);
    expect(linesMatching(list.stderr, WARNING)).toHaveLength(1);

    const verify = await runCli(['verify', '--json'], { env: down });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const [v] = jsonResults(verify.stdout);
    expect(v).toMatchObject({ name, ok: true });
    expect(v.recordedIn).toEqual([join(dir, 'backups', `${name}.verify.json`)]);
    expect(linesMatching(verify.stderr, WARNING)).toHaveLength(1);

    const byName = await runCli(['verify', name], { env: down });
    expect(byName.code, byName.stdout + byName.stderr).toBe(0);
    expect(linesMatching(byName.stderr, WARNING)).toHaveLength(1);

    const status = await runCli(['status', '--json'], { env: down });
    expect(status.code, status.stdout + status.stderr).toBe(0);
    const d = jsonResults(status.stdout)[0];
    expect(d).toMatchObject({ ok: true, reasons: [], newestGood: { name, locations: ['local'] } });
    expect(d.warnings).toEqual([expect.stringMatching(WARNING)]);
    expect(linesMatching(status.stderr, WARNING)).toHaveLength(1);
  });

  it('with nothing in BACKUP_DIR either, the error says the bucket failed and only BACKUP_DIR was searched', async () => {
    const empty = { ...down, BACKUP_DIR: join(tempDir(), 'none') };
    const r = await runCli(['restore', '--latest', '--target', `c16_none_${uniqueId()}`, '--create'], { env: empty });
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/no good backup of .* \(the bucket could not be read\)/);
    expect(r.stderr).toMatch(
      /hint: .*only BACKUP_DIR was searched \(as with --from local\): the bucket could not be read \(S3 endpoint unreachable/,
    );
  });
});
