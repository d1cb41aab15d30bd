import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, runCli, spawnCli } from '../helpers/cli.js';
import { bigTableSql, dumpingPgDump, waitFor } from '../helpers/processes.js';
import { createDatabase, services, tempDir } from '../helpers/services.js';

/** Rows of random-looking text: gzip -9 takes a few seconds on them, long enough to interrupt. */
const BIG_SQL = bigTableSql(400_000);

/** Wait until the dump streams into its temp file. */
function dumping(backups: string): Promise<string> {
  return waitFor(() => {
    const tmp = existsSync(backups) ? readdirSync(backups).find((f) => f.includes('.tmp-')) : undefined;
    return tmp && statSync(join(backups, tmp)).size > 64 * 1024 ? tmp : undefined;
  }, 30_000);
}

const hintOf = (stderr: string) => stderr.split('\n').find((l) => l.startsWith('hint: '));

describe('hints of the CLI', () => {
  let db: string;
  beforeAll(async () => {
    db = await createDatabase('hints', BIG_SQL);
  });

  it('pg_dump killed by SIGKILL: a hint about the OOM killer', async () => {
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, extra: { BACKUP_COMPRESSION: 'gzip:9', BACKUP_GLOBALS: 'false' } });
    const run = spawnCli(['backup'], { env });
    const pgDump = await waitFor(() => dumpingPgDump(run.child.pid!), 30_000);
    await dumping(join(dir, 'backups'));
    process.kill(pgDump, 'SIGKILL');
    const r = await run.done;
    expect(r.code).toBe(13);
    expect(r.stderr).toMatch(/^pgbak: error: pg_dump was killed by SIGKILL/m);
    expect(hintOf(r.stderr)).toMatch(
      /^hint: pg_dump was killed from outside pgbak .*OOM killer.*dmesg.*journalctl -k.*earlier backups are untouched/,
    );
  });

  it('interrupted (SIGTERM): the hint says what was cleaned up and that earlier backups are untouched', async () => {
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, extra: { BACKUP_COMPRESSION: 'gzip:9', BACKUP_GLOBALS: 'false' } });
    const run = spawnCli(['backup'], { env });
    await dumping(join(dir, 'backups'));
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/^pgbak: error: interrupted/m);
    expect(hintOf(r.stderr)).toMatch(
      new RegExp(`^hint: stopped by a signal: the partial files of ${db}_\\d{8}_\\d{6} were removed .*earlier backups are untouched`),
    );
    expect(readdirSync(join(dir, 'backups')).filter((f) => f.includes('.tmp-') || f.endsWith('.dump'))).toEqual([]);
  });

  it('DATABASE_URL without a database: exit 2 with the URL shape in the hint', async () => {
    const s = services();
    const dir = tempDir();
    const env = { ...backupEnv({ database: db, dir }), DATABASE_URL: `postgresql://${s.pg.user}@${s.pg.host}:${s.pg.port}` };
    const r = await runCli(['backup'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('DATABASE_URL: must name a database');
    expect(hintOf(r.stderr)).toMatch(/^hint: the database is the path after host:port, e\.g\. DATABASE_URL=postgresql:\/\/\S+:5432\/\w+/);
  });

  it('BACKUP_DIR under a file (ENOTDIR): exit 6, the path and what is wrong with it, not an internal error', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a-file'), 'not a directory');
    const env = backupEnv({ database: db, dir, extra: { BACKUP_DIR: join(dir, 'a-file', 'db'), LOG_FILE: '' } });
    const r = await runCli(['backup', '--no-upload'], { env });
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(/pgbak: error: cannot .*a-file\/db.*: a part of that path is a file, not a directory/);
    expect(hintOf(r.stderr)).toBeDefined();
  });

  it('GPG key not found: the hint names the keyring searched (GNUPGHOME of the environment or .env, else ~/.gnupg)', async () => {
    const s = services();
    const dir = tempDir();
    const extra = { GPG_RECIPIENT: 'nobody@nowhere.test', BACKUP_GLOBALS: 'false' };
    const withHome = await runCli(['backup', '--no-upload'], { env: backupEnv({ database: db, dir, extra }), cwd: dir });
    expect(withHome.code).toBe(8);
    expect(withHome.stderr).toMatch(/GPG key not found: nobody@nowhere\.test/);
    expect(hintOf(withHome.stderr)).toContain(`gpg --import key.pub; searched the keyring in GNUPGHOME=${s.gpg.home}`);

    const home = tempDir('pgbak-home-');
    const unset: NodeJS.ProcessEnv = { ...backupEnv({ database: db, dir, extra }), HOME: home };
    delete unset.GNUPGHOME;
    const withoutHome = await runCli(['backup', '--no-upload'], { env: unset, cwd: dir });
    expect(withoutHome.code).toBe(8);
    expect(hintOf(withoutHome.stderr)).toContain(`searched the keyring in ${join(home, '.gnupg')} (GNUPGHOME unset)`);

    writeFileSync(join(dir, '.env'), `GNUPGHOME=${s.gpg.home}\n`);
    const fromDotenv = await runCli(['backup', '--no-upload'], { env: unset, cwd: dir });
    expect(fromDotenv.code).toBe(8);
    expect(hintOf(fromDotenv.stderr)).toContain(`searched the keyring in GNUPGHOME=${s.gpg.home}`);
  });

  it('a keyring gpg cannot use, or a gpg killed while it lists the keys: said so, not "GPG key not found"', async () => {
    const dir = tempDir();
    const extra = { GPG_RECIPIENT: 'nobody@nowhere.test', BACKUP_GLOBALS: 'false' };
    const missingHome = join(dir, 'no-such-gnupg');
    const broken = await runCli(['backup', '--no-upload'], { env: { ...backupEnv({ database: db, dir, extra }), GNUPGHOME: missingHome } });
    expect(broken.code).toBe(8);
    expect(broken.stderr).toMatch(
      /^pgbak: error: gpg --list-keys nobody@nowhere\.test failed: Fatal: .*no-such-gnupg: directory does not exist!$/m,
    );
    expect(broken.stderr).not.toMatch(/GPG key not found/);
    expect(hintOf(broken.stderr)).toContain(`check the keyring in GNUPGHOME=${missingHome}`);

    // gpg dies of a signal while it lists the keys (as under the OOM killer).
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const real = execFileSync('sh', ['-c', 'command -v gpg'], { encoding: 'utf8' }).trim();
    writeFileSync(join(bin, 'gpg'), `#!/bin/sh\ncase " $* " in *" --list-keys "*) kill -KILL $$;; esac\nexec ${real} "$@"\n`, {
      mode: 0o755,
    });
    const killed = await runCli(['backup', '--no-upload'], {
      env: backupEnv({ database: db, dir, extra: { ...extra, PATH: `${bin}:${process.env.PATH}` } }),
    });
    expect(killed.code).toBe(8);
    expect(killed.stderr).toMatch(/^pgbak: error: gpg --list-keys nobody@nowhere\.test was killed by SIGKILL$/m);
    expect(killed.stderr).not.toMatch(/GPG key not found/);
    expect(hintOf(killed.stderr)).toMatch(/OOM killer/);
    expect(readdirSync(join(dir, 'backups')).filter((f) => !f.startsWith('.'))).toEqual([]);
  });

  it('restore of a name that is no backup shows what was typed, quoted, and nothing is touched', async () => {
    const dir = tempDir();
    const env = backupEnv({ database: db, dir, extra: { BACKUP_COMPRESSION: 'gzip:1', BACKUP_GLOBALS: 'false' } });
    const made = await runCli(['backup', '--no-prune'], { env });
    expect(made.code, made.stderr).toBe(0);
    for (const typed of ['../../etc/passwd', 'x; rm -rf /', '$(touch pwned)', '\u001b[31mred']) {
      const r = await runCli(['restore', typed, '--target', 'hints_never_created', '--create'], { env, cwd: dir });
      expect(r.code, r.stderr).toBe(10);
      expect(r.stderr).toContain(`no backup named ${JSON.stringify(typed)} in `);
      expect(r.stderr).not.toContain('\u001b[31m');
      expect(hintOf(r.stderr)).toMatch(/pgbak list/);
    }
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
  });
});
