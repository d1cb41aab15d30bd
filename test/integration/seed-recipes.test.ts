import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli } from '../helpers/cli.js';
import { richSql, snapshot } from '../helpers/restore-fixtures.js';
import { createBucket, createDatabase, execFileAsync, services, tempDir, uniqueId } from '../helpers/services.js';
import { jsonResult } from '../helpers/json-schemas.js';

/**
 * The seed's Restore section, run exactly as written (only names, host, port and keys are
 * ours) on artifacts pgbak made with its defaults: BACKUP_DIR=./backups/db, the bucket's
 * backups/ prefix, gzip:9 custom-format dumps, gpg to GPG_RECIPIENT.
 */
describe("the seed's restore recipes on pgbak's artifacts", () => {
  let db: string;
  let bucket: string;
  let dir: string;
  let plainName: string;
  let encName: string;
  let expected: Awaited<ReturnType<typeof snapshot>>;

  /** Run a shell recipe in the backup's working directory, the password in PGPASSWORD as a user would. */
  async function sh(recipe: string): Promise<void> {
    const s = services();
    await execFileAsync('bash', ['-o', 'pipefail', '-c', recipe], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, GNUPGHOME: s.gpg.home, PGPASSWORD: s.pg.password },
    });
  }

  const connection = () => {
    const s = services();
    return `--host=${s.pg.host} --port=${s.pg.port} --username=${s.pg.user}`;
  };

  beforeAll(async () => {
    db = await createDatabase('sweet_narcisse', richSql(`seed_owner_${uniqueId()}`));
    bucket = await createBucket('sweet-backups');
    dir = tempDir();
    for (const encrypt of [false, true]) {
      const env = { ...backupEnv({ database: db, dir, bucket, encrypt }), BACKUP_DIR: './backups/db' };
      const r = await runCli(['backup', '--json', '--no-prune'], { env, cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      if (encrypt) encName = jsonResult(r.stdout).name;
      else plainName = jsonResult(r.stdout).name;
      if (!encrypt) await new Promise((r) => setTimeout(r, 1100)); // one-second names
    }
    expected = await snapshot(db);
  });

  it('Restore compressed backup: pg_restore --clean --if-exists backups/db/<name>.dump', async () => {
    const target = await createDatabase('sweet_narcisse');
    await sh(`pg_restore ${connection()} \\
    --dbname=${target} --clean --if-exists \\
    backups/db/${plainName}.dump`);
    expect(await snapshot(target)).toEqual(expected);
  });

  it('Restore encrypted backup: gpg --decrypt backups/db/<name>.dump.gpg | pg_restore …', async () => {
    const target = await createDatabase('sweet_narcisse');
    await sh(`gpg --decrypt backups/db/${encName}.dump.gpg | \\
    pg_restore ${connection()} \\
    --dbname=${target} --clean --if-exists`);
    expect(await snapshot(target)).toEqual(expected);
  });

  it('From MinIO: aws s3 cp s3://<bucket>/backups/<name>.dump --endpoint-url … ./restore.dump, then pg_restore', async () => {
    const s = services();
    const target = await createDatabase('sweet_narcisse');
    await sh(`AWS_ACCESS_KEY_ID=${s.s3.accessKey} AWS_SECRET_ACCESS_KEY=${s.s3.secretKey} \\
    aws s3 cp s3://${bucket}/backups/${plainName}.dump \\
    --endpoint-url ${s.s3.endpoint} ./restore.dump`);
    await sh(`pg_restore ${connection()} \\
    --dbname=${target} --clean --if-exists restore.dump`);
    expect(await snapshot(target)).toEqual(expected);
  });
});
