/**
 * Typos are not silent, from the operator's side: bin/pgbak run in a directory whose `.env` has
 * mistakes, against the real test PostgreSQL and GnuPG.
 */
import { execFile } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { jsonResult } from '../helpers/json-schemas.js';
import { backupEnv, runCli } from '../helpers/cli.js';
import { SAMPLE_SQL, createDatabase, services, tempDir } from '../helpers/services.js';

const execFileAsync = promisify(execFile);

/** backupEnv without GNUPGHOME, and with a HOME whose ~/.gnupg is empty: only `.env` can name the keyring. */
function envWithoutKeyring(database: string, dir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...backupEnv({ database, dir, extra }), HOME: tempDir('pgbak-home-') };
  delete env.GNUPGHOME;
  return env;
}

describe('typos in .env and bare durations, through the CLI', () => {
  let db: string;
  beforeAll(async () => {
    db = await createDatabase('typos', SAMPLE_SQL);
  });

  it('backup --dry-run warns about RETENTION_DAY and BACKUP_COMPRESION in .env, with the names meant', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, '.env'), 'RETENTION_DAY=7\nBACKUP_COMPRESION=zstd:3\nPGCONNECT_TIMEOUT=10\n');
    const r = await runCli(['backup', '--dry-run'], { env: backupEnv({ database: db, dir }), cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('unknown variable RETENTION_DAY in .env (ignored); did you mean RETENTION_DAYS?');
    expect(r.stderr).toContain('unknown variable BACKUP_COMPRESION in .env (ignored); did you mean BACKUP_COMPRESSION?');
    expect(r.stderr).not.toContain('PGCONNECT_TIMEOUT');
    // Each warning is a WARN line of the logger, not something mixed into the plan on stdout.
    for (const line of r.stderr.split('\n').filter((l) => l.includes('unknown variable'))) expect(line).toMatch(/warn/i);
    expect(r.stdout).not.toContain('unknown variable');
  });

  it('a typo in the environment is a warning too; another tool’s variables are not', async () => {
    const dir = tempDir();
    const env = backupEnv({
      database: db,
      dir,
      extra: { STORAGE_BUCKT: 'other', PG_MAJOR: '15', GPG_TTY: '/dev/pts/0', BACKUP_HOME: '/x' },
    });
    const r = await runCli(['backup', '--dry-run'], { env, cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('unknown variable STORAGE_BUCKT in the environment (ignored); did you mean STORAGE_BUCKET?');
    expect(r.stderr).not.toMatch(/PG_MAJOR|GPG_TTY|BACKUP_HOME/);
  });

  it('--set RETENTION_DAY=7 is refused (exit 2) with the name meant', async () => {
    const dir = tempDir();
    const r = await runCli(['backup', '--dry-run', '--set', 'RETENTION_DAY=7'], { env: backupEnv({ database: db, dir }), cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--set RETENTION_DAY: not a pgbak variable .*; did you mean RETENTION_DAYS\?/);
  });

  it('BACKUP_RPO=6 in .env is a configuration error (exit 2) asking for a unit', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, '.env'), 'BACKUP_RPO=6\n');
    const r = await runCli(['backup', '--dry-run'], { env: backupEnv({ database: db, dir }), cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/BACKUP_RPO="6": add a unit, e\.g\. 6h/);
  });

  it('GNUPGHOME only in .env: the encrypted backup uses that keyring and succeeds', async () => {
    const s = services();
    const dir = tempDir();
    writeFileSync(join(dir, '.env'), `GNUPGHOME=${s.gpg.home}\nGPG_RECIPIENT=${s.gpg.email}\n`);
    const r = await runCli(['backup', '--json', '--no-upload'], { env: envWithoutKeyring(db, dir), cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const result = jsonResult(r.stdout);
    expect(result.encrypted).toBe(true);
    const file = join(dir, 'backups', `${result.name}.dump.gpg`);
    expect(readdirSync(join(dir, 'backups'))).toContain(`${result.name}.dump.gpg`);
    // Encrypted to the key of that keyring: gpg decrypts it there.
    const { stdout } = await execFileAsync(
      'gpg',
      ['--batch', '--no-tty', '--quiet', '--decrypt', '--output', join(dir, 'plain.dump'), file],
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, GNUPGHOME: s.gpg.home },
      },
    );
    expect(stdout).toBe('');
    expect(readdirSync(dir)).toContain('plain.dump');
  });

  it('the environment’s GNUPGHOME wins over .env’s', async () => {
    const s = services();
    const dir = tempDir();
    const empty = tempDir('pgbak-gpg-empty-');
    writeFileSync(join(dir, '.env'), `GNUPGHOME=${empty}\nGPG_RECIPIENT=${s.gpg.email}\n`);
    const r = await runCli(['backup', '--json', '--no-upload'], { env: backupEnv({ database: db, dir }), cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(jsonResult(r.stdout).encrypted).toBe(true);
  });
});
