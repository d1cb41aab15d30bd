// The npm package as an operator gets it: `npm pack`, `npm install -g` into a temporary prefix,
// then the installed `pgbak` (not this checkout's bin/) runs from another directory with that
// directory's .env, makes a real backup there and restores it.
//
// .ci/run packs and installs before the tests and passes the result in PGBAK_PACKED_BIN and
// PGBAK_PACKED_TARBALL; a local `npm test` packs the dist/ it just built (--ignore-scripts: no
// rebuild under the other tests' feet) and installs it here.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { createDatabase, pgUrl, SAMPLE_SQL, sql, tableChecksums, tempDir } from '../helpers/services.js';

const run = promisify(execFile);

let bin: string;
let tarball: string;

beforeAll(async () => {
  if (process.env.PGBAK_PACKED_BIN && process.env.PGBAK_PACKED_TARBALL) {
    bin = process.env.PGBAK_PACKED_BIN;
    tarball = process.env.PGBAK_PACKED_TARBALL;
    return;
  }
  const dir = tempDir('pgbak-pack-');
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: REPO_ROOT });
  tarball = join(dir, stdout.trim().split('\n').pop()!);
  const prefix = join(dir, 'prefix');
  await run('npm', ['install', '-g', '--no-audit', '--no-fund', '--prefix', prefix, tarball], { cwd: dir, timeout: 240_000 });
  bin = join(prefix, 'bin', 'pgbak');
}, 300_000);

describe('the npm package', () => {
  it('ships the built CLI and the operator files, and no tests, bench results or CI files', async () => {
    const { stdout } = await run('tar', ['tzf', tarball]);
    const files = stdout.split('\n').filter(Boolean);
    for (const needed of [
      'package/bin/pgbak',
      'package/bin/package.json',
      'package/dist/cli/main.js',
      'package/dist/cli/help.json',
      'package/dist/index.js',
      'package/dist/index.d.ts',
      'package/scripts/backup-db.sh',
      'package/systemd/db-backup.timer',
      'package/monitoring/alerts.yml',
      'package/docs/scheduling.md',
      'package/.env.example',
      'package/README.md',
      'package/web/dashboard.js',
      'package/web/dashboard.css',
    ]) {
      expect(files, needed).toContain(needed);
    }
    const unwanted = files.filter((f) => /^package\/(test|bench|demo|src|\.ci)\//.test(f) || /\.map$|tsconfig|vitest/.test(f));
    expect(unwanted).toEqual([]);
  });

  it('runs once installed: --version, then a real backup and restore from another directory', async () => {
    expect(existsSync(bin)).toBe(true);
    const version = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version as string;
    const v = await run(bin, ['--version'], { env: { PATH: process.env.PATH } });
    expect(v.stdout.trim()).toBe(version);
    // The help texts the build rendered, served by the installed launcher (test/unit/startup.test.ts: equal to the CLI's).
    const help = await run(bin, ['--help'], { env: { PATH: process.env.PATH } });
    expect(help.stdout).toBe(
      (JSON.parse(readFileSync(join(REPO_ROOT, 'dist', 'cli', 'help.json'), 'utf8')) as { program: string }).program,
    );

    const db = await createDatabase('pkg', SAMPLE_SQL);
    const work = tempDir('pgbak-pkg-cwd-');
    // The operator's setup: a .env in the working directory, relative BACKUP_DIR, no flags.
    writeFileSync(join(work, '.env'), `DATABASE_URL=${pgUrl(db)}\nBACKUP_DIR=./backups/db\nLOG_FILE=./logs/backup-db.log\n`, {
      mode: 0o600,
    });
    const env = { PATH: process.env.PATH, HOME: work };
    const backup = await run(bin, ['backup'], { cwd: work, env }).catch((e: { code: number; stderr: string }) => e);
    expect('code' in backup ? backup.stderr : '', 'backup must succeed').toBe('');
    const made = readdirSync(join(work, 'backups', 'db'));
    expect(made.filter((f) => f.endsWith('.dump'))).toHaveLength(1);
    expect(made.filter((f) => f.endsWith('.manifest.json'))).toHaveLength(1);

    // The dashboard's script and style sheet are found from the installed package.
    const report = join(work, 'report.html');
    await run(bin, ['report', '--html', report], { cwd: work, env });
    const html = readFileSync(report, 'utf8');
    expect(html).toContain(made.find((f) => f.endsWith('.manifest.json'))!.replace('.manifest.json', ''));
    expect(html).toContain('id="pgbak-data"');

    const target = `${db}_copy`;
    await run(bin, ['restore', '--latest', '--target', target, '--create'], { cwd: work, env });
    expect(await tableChecksums(target)).toEqual(await tableChecksums(db));
    await sql('postgres', `DROP DATABASE "${target}"`);
  });
});
