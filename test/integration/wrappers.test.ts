import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, REPO_ROOT } from '../helpers/cli.js';
import { createDatabase, SAMPLE_SQL, tempDir } from '../helpers/services.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'backup-db.sh');

describe("the guide's scripts/backup-db.sh", () => {
  let db: string;
  beforeAll(async () => {
    db = await createDatabase('wrap', SAMPLE_SQL);
  });

  it('runs from any working directory and passes the exit status through', () => {
    const dir = tempDir();
    const env = backupEnv({ database: db, dir });
    const dry = spawnSync(SCRIPT, ['--dry-run'], { cwd: '/', env, encoding: 'utf8' });
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('pgbak backup --dry-run');
    expect(readdirSync(dir)).toEqual([]);

    const ok = spawnSync(SCRIPT, ['--no-upload', '--no-encrypt'], { cwd: '/', env, encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(readdirSync(join(dir, 'backups')).filter((f) => f.endsWith('.dump'))).toHaveLength(1);

    const bad = spawnSync(SCRIPT, [], { cwd: '/', env: { ...env, RETENTION_DAYS: 'abc' }, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('RETENTION_DAYS');
  });

  it('resolves the relative defaults against the project directory', () => {
    const dir = tempDir();
    // BACKUP_DIR left relative: the dry run must plan it under the repository, not under cwd.
    const { BACKUP_DIR: _drop, ...env } = backupEnv({ database: db, dir });
    const dry = spawnSync(SCRIPT, ['--dry-run'], { cwd: dir, env: { ...env, LOG_FILE: '' }, encoding: 'utf8' });
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`${join(REPO_ROOT, 'backups', 'db')}/${db}_`);
  });

  it("backup-db.ps1 maps -DryRun, -NoUpload and -NoEncrypt to the same flags and exits with pgbak's code", () => {
    const ps1 = readFileSync(join(REPO_ROOT, 'scripts', 'backup-db.ps1'), 'utf8');
    expect(ps1).toMatch(/\[switch\]\$DryRun/);
    expect(ps1).toMatch(/if \(\$DryRun\)\s+\{ \$pgbakArgs \+= '--dry-run' \}/);
    expect(ps1).toMatch(/if \(\$NoUpload\)\s+\{ \$pgbakArgs \+= '--no-upload' \}/);
    expect(ps1).toMatch(/if \(\$NoEncrypt\)\s+\{ \$pgbakArgs \+= '--no-encrypt' \}/);
    expect(ps1).toMatch(/exit \$LASTEXITCODE/);
  });
});
