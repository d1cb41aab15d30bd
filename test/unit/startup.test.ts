import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HELP_VARIABLES } from '../../src/cli/help-variables.js';
import { variables } from '../../src/config/schema.js';
import { PGBAK_BIN, REPO_ROOT } from '../helpers/cli.js';

/**
 * `pgbak --version` and `--help` (the program's and every command's) load no heavy dependency:
 * the commands import the api, config and everything behind them in their actions
 * (docs/performance.md, "Start-up"). Not timing-based: the built bin/pgbak runs under a loader
 * hook (test/helpers/module-log.mjs) that records every module it loads.
 */

/** Packages a command loads only when it runs: together ~0.35 s and ~40 MB of start-up (measured). */
const HEAVY = ['nodemailer', 'prom-client', 'pg', 'zod', 'yaml', 'croner'] as const;
const HOOK = join(REPO_ROOT, 'test', 'helpers', 'module-log.mjs');
const work = mkdtempSync(join(tmpdir(), 'pgbak-startup-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let runs = 0;
/** Run the built CLI with the module recorder; what it printed, and every module URL/path it loaded. */
function loaded(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const log = join(work, `modules-${++runs}.txt`);
  return new Promise<{ code: number | null; stdout: string; stderr: string; modules: string[] }>((resolve) => {
    execFile(
      process.execPath,
      ['--import', HOOK, PGBAK_BIN, ...args],
      { cwd: work, env: { PATH: process.env.PATH, HOME: process.env.HOME, PGBAK_MODULE_LOG: log, ...env } },
      (err, stdout, stderr) => {
        let modules: string[] = [];
        try {
          modules = readFileSync(log, 'utf8').split('\n').filter(Boolean);
        } catch {
          // No log: modules stays empty and the caller's checks say so.
        }
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr, modules });
      },
    );
  });
}

/** The heavy packages among `modules` (paths or file: URLs under node_modules/). */
function heavyIn(modules: readonly string[]): string[] {
  const found = new Set<string>();
  for (const m of modules) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(decodeURIComponent(m))?.[1];
    if (!pkg) continue;
    const hit = HEAVY.find((h) => pkg === h || pkg.startsWith(`${h}/`));
    if (hit) found.add(pkg);
  }
  return [...found].sort();
}

const commands = ['backup', 'list', 'restore', 'verify', 'prune', 'adopt', 'upload', 'init', 'status', 'daemon', 'report'];

describe('start-up: --version and --help load no heavy dependency', () => {
  it('the recorder sees what a real command loads (so an empty list below means something)', async () => {
    // status with only BACKUP_DIR: finds nothing to check (exit 2) after loading the api and the config.
    const r = await loaded(['status'], { BACKUP_DIR: join(work, 'backups') });
    expect(r.stderr).toContain('nothing to check');
    expect(r.code).toBe(2);
    const heavy = heavyIn(r.modules);
    for (const pkg of ['zod', 'pg']) expect(heavy, pkg).toContain(pkg);
    // pgbak's own S3 client (no AWS SDK any more: package.json must not bring one back).
    expect(r.modules.some((m) => m.endsWith('/dist/storage/s3-client.js'))).toBe(true);
    expect(r.modules.filter((m) => /node_modules\/@(aws-sdk|smithy)\//.test(m))).toEqual([]);
    // A command loads its own api module, not the library's index, and what it does not use stays
    // unloaded: yaml without a config file, nodemailer without NOTIFY_EMAIL, prom-client without metrics.
    expect(r.modules.some((m) => m.endsWith('/dist/api/status.js'))).toBe(true);
    expect(r.modules.some((m) => m.endsWith('/dist/api/index.js'))).toBe(false);
    for (const pkg of ['yaml', 'nodemailer', 'prom-client']) expect(heavy, pkg).not.toContain(pkg);
  });

  it('pgbak --version and -V print the version alone, through bin/pgbak and through the CLI (-v --version)', async () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const args of [['--version'], ['-V'], ['-v', '--version']]) {
      const r = await loaded(args);
      expect(r, args.join(' ')).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
      expect(r.modules.length, args.join(' ')).toBeGreaterThan(0);
      expect(heavyIn(r.modules), args.join(' ')).toEqual([]);
    }
  });

  it('pgbak --help, bare pgbak and every command’s --help load neither the api nor a heavy package', async () => {
    for (const args of [['--help'], [], ['help'], ...commands.map((c) => [c, '--help'])]) {
      const r = await loaded(args);
      const what = `pgbak ${args.join(' ')}`;
      expect(`${r.stdout}${r.stderr}`, what).toMatch(/^Usage: pgbak/);
      // Loaded the CLI for real, with commander: the list is not empty by accident.
      expect(
        r.modules.some((m) => m.endsWith('/dist/cli/main.js')),
        what,
      ).toBe(true);
      expect(heavyIn(r.modules), what).toEqual([]);
      expect(
        r.modules.filter((m) => /\/dist\/(api|storage|config\/(schema|config-file|load))/.test(m)),
        what,
      ).toEqual([]);
    }
  });

  it('the help footer lists the schema’s variables (src/cli/help-variables.ts is a copy without zod)', () => {
    const expected = variables.map((v) => [v.name, v.description, 'default' in v && v.default ? v.default : ''] as const);
    const paste = expected.map((row) => `  [${row.map((x) => `'${x.replace(/'/g, "\\'")}'`).join(', ')}],`).join('\n');
    expect(HELP_VARIABLES, `src/config/schema.ts changed: replace the rows of src/cli/help-variables.ts with\n${paste}\n`).toEqual(
      expected,
    );
  });
});
