import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HELP_VARIABLES } from '../../src/cli/help-variables.js';
import { buildProgram, COMMANDS, commandOf } from '../../src/cli/main.js';
import { variables } from '../../src/config/schema.js';
import { PGBAK_BIN, REPO_ROOT } from '../helpers/cli.js';

/**
 * `pgbak --version` and `--help` (the program's and every command's) load no heavy dependency:
 * the commands import the api, config and everything behind them in their actions; bin/pgbak
 * answers `--version` from package.json and the exact help requests from the texts `npm run build`
 * rendered (dist/cli/help.json), without loading the CLI (docs/performance.md, "Start-up"). Not
 * timing-based: the built bin/pgbak runs under a loader hook (test/helpers/module-log.mjs) that
 * records every module it loads.
 */

/** Packages a command loads only when it runs: together ~0.35 s and ~40 MB of start-up (measured). */
const HEAVY = ['nodemailer', 'prom-client', 'pg', 'zod', 'yaml', 'croner'] as const;
const HOOK = join(REPO_ROOT, 'test', 'helpers', 'module-log.mjs');
/** The built CLI without bin/pgbak's fast paths: what the CLI itself prints. */
const CLI_MAIN = join(REPO_ROOT, 'test', 'helpers', 'cli-main.mjs');
const work = mkdtempSync(join(tmpdir(), 'pgbak-startup-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let runs = 0;
/**
 * Run the built bin/pgbak (or `script`, e.g. CLI_MAIN) with the module recorder; what it printed,
 * and every module URL/path it loaded.
 */
function loaded(args: readonly string[], env: NodeJS.ProcessEnv = {}, script = PGBAK_BIN) {
  const log = join(work, `modules-${++runs}.txt`);
  return new Promise<{ code: number | null; stdout: string; stderr: string; modules: string[] }>((resolve) => {
    execFile(
      process.execPath,
      ['--import', HOOK, script, ...args],
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

  it('a backup loads node-postgres without node’s fetch (undici: pg’s Cloudflare probe)', async () => {
    // No server on port 1: the backup loads what its preflight needs, connects and fails (exit 5).
    const r = await loaded(['backup', '--no-upload', '--no-encrypt'], {
      DATABASE_URL: 'postgresql://pgbak@127.0.0.1:1/shop',
      BACKUP_DIR: join(work, 'backups-refused'),
    });
    expect(r.stderr).toContain('connection refused: postgresql://pgbak@127.0.0.1:1/shop');
    expect(r.code).toBe(5);
    expect(heavyIn(r.modules)).toContain('pg');
    // The recorder lists node's internals: the check below can see undici when it is loaded.
    expect(r.modules.filter((m) => m.startsWith('node-internal:')).length).toBeGreaterThan(50);
    expect(r.modules.filter((m) => m.includes('undici'))).toEqual([]);
    // The steps after a backup (restore test, retention, notifications) load only once the dump ran.
    expect(r.modules.some((m) => m.endsWith('/dist/api/finish-run.js'))).toBe(true);
  });

  it('a command loads its own module of src/cli/commands only; help and a mistyped command load them all', async () => {
    expect(COMMANDS.map((c) => c.name)).toEqual(names);
    expect(commandOf(['node', 'pgbak', 'backup', '--dry-run'])).toBe('backup');
    expect(commandOf(['node', 'pgbak', '-v', 'wal-push', 'x'])).toBe('wal-push');
    for (const argv of [[], ['help', 'backup'], ['--help'], ['bakup'], ['--set', 'X=1', 'backup']])
      expect(commandOf(['node', 'pgbak', ...argv]), argv.join(' ')).toBeUndefined();
    const commandModules = (modules: readonly string[]) =>
      modules.filter((m) => m.includes('/dist/cli/commands/')).map((m) => m.replace(/.*\/dist\/cli\/commands\//, ''));
    const status = await loaded(['status'], { BACKUP_DIR: join(work, 'backups-none') });
    expect(status.stderr).toContain('nothing to check');
    expect(commandModules(status.modules)).toEqual(['status.js']);
    // A typo: commander needs every command to suggest the closest.
    const typo = await loaded(['lsit'], {}, CLI_MAIN);
    expect(typo.stderr).toContain("unknown command 'lsit'");
    expect(typo.stderr).toContain('list');
    expect(new Set(commandModules(typo.modules)).size).toBeGreaterThanOrEqual(names.length);
  });

  it('pgbak --version and -V print the version alone, through bin/pgbak and through the CLI (-v --version)', async () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const args of [['--version'], ['-V'], ['-v', '--version']]) {
      const r = await loaded(args);
      expect(r, args.join(' ')).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
      expect(r.modules.length, args.join(' ')).toBeGreaterThan(0);
      expect(heavyIn(r.modules), args.join(' ')).toEqual([]);
      // bin/pgbak is CommonJS (bin/package.json): its path is in require.cache (the ESM loader starts only for dist/).
      expect(r.modules, args.join(' ')).toContain(PGBAK_BIN);
    }
  });

  it('the CLI’s own --help, bare pgbak and every command’s --help load neither the api nor a heavy package', async () => {
    for (const args of [['--help'], [], ['help'], ...commands.map((c) => [c, '--help'])]) {
      const r = await loaded(args, {}, args.length ? CLI_MAIN : PGBAK_BIN);
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

const names = (await buildProgram({ outcome: undefined })).commands.map((c) => c.name());

describe('bin/pgbak prints the help texts `npm run build` rendered (dist/cli/help.json)', () => {
  const pgbakModules = (modules: readonly string[]) => modules.filter((m) => m.includes('/dist/'));

  it('for --help, -h, help and every command’s --help, -h, help <command>: what the CLI prints, without loading the CLI', async () => {
    expect(names.length).toBeGreaterThan(10);
    const groups: [readonly string[], readonly (readonly string[])[]][] = [
      [['--help'], [['--help'], ['-h'], ['help']]],
      ...names.map((n): [readonly string[], readonly (readonly string[])[]] => [
        [n, '--help'],
        [
          [n, '--help'],
          [n, '-h'],
          ['help', n],
        ],
      ]),
    ];
    for (const [cliArgs, forms] of groups) {
      const [cli, ...fast] = await Promise.all([loaded(cliArgs, {}, CLI_MAIN), ...forms.map((args) => loaded(args))]);
      expect(cli!.stdout, `CLI: pgbak ${cliArgs.join(' ')}`).toMatch(/^Usage: pgbak/);
      expect(cli!.modules.some((m) => m.endsWith('/dist/cli/main.js'))).toBe(true);
      forms.forEach((args, i) => {
        const what = `bin/pgbak ${args.join(' ')}`;
        expect(fast[i], what).toMatchObject({ code: 0, stdout: cli!.stdout, stderr: '' });
        // The recorder ran (bin/pgbak itself is listed), and nothing of dist/ was loaded.
        expect(
          fast[i]!.modules.some((m) => m.endsWith('/bin/pgbak')),
          what,
        ).toBe(true);
        expect(pgbakModules(fast[i]!.modules), what).toEqual([]);
      });
    }
  });

  it('anything else goes to the CLI: other arguments, in a checkout a help.json older than the CLI, a missing one', async () => {
    const reference = (await loaded(['--help'], {}, CLI_MAIN)).stdout;
    const verbose = await loaded(['-v', '--help']);
    expect(verbose).toMatchObject({ code: 0, stdout: reference });
    expect(verbose.modules.some((m) => m.endsWith('/dist/cli/main.js'))).toBe(true);

    // A copy of the checkout's bin/, dist/ (timestamps kept) and an empty src/: one built CLI file
    // newer than help.json, then no help.json. Without src/ (an installed package: npm gives its files
    // the times they were unpacked at) the texts are served whatever the times.
    const install = join(work, 'install');
    mkdirSync(join(install, 'src'), { recursive: true });
    for (const part of ['bin', 'package.json', 'dist']) {
      cpSync(join(REPO_ROOT, part), join(install, part), { recursive: true, preserveTimestamps: true, filter: (f) => !f.endsWith('.map') });
    }
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(install, 'node_modules'));
    const bin = join(install, 'bin', 'pgbak');
    const fresh = await loaded(['--help'], {}, bin);
    expect(fresh).toMatchObject({ code: 0, stdout: reference });
    expect(pgbakModules(fresh.modules)).toEqual([]);
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(install, 'dist', 'cli', 'commands', 'backup.js'), later, later);
    const stale = await loaded(['--help'], {}, bin);
    expect(stale).toMatchObject({ code: 0, stdout: reference });
    expect(stale.modules.some((m) => m.endsWith('/dist/cli/main.js'))).toBe(true);
    rmSync(join(install, 'src'), { recursive: true });
    const installed = await loaded(['--help'], {}, bin);
    expect(installed).toMatchObject({ code: 0, stdout: reference });
    expect(pgbakModules(installed.modules)).toEqual([]);
    rmSync(join(install, 'dist', 'cli', 'help.json'));
    const missing = await loaded(['backup', '--help'], {}, bin);
    expect(missing).toMatchObject({ code: 0, stdout: (await loaded(['backup', '--help'], {}, CLI_MAIN)).stdout });
    expect(missing.modules.some((m) => m.endsWith('/dist/cli/main.js'))).toBe(true);
  });

  it('on a terminal of any width: the stored texts, the same as the CLI prints there (help is 80 columns wide everywhere)', async () => {
    const reference = (await loaded(['--help'], {}, CLI_MAIN)).stdout;
    /** `script` (bin/pgbak or the CLI itself) --help on a pseudo-terminal (util-linux `script`) `cols` wide: its output and modules. */
    const onTty = (cols: number, script = PGBAK_BIN) => {
      const log = join(work, `modules-${++runs}.txt`);
      const command = `stty cols ${cols}; exec '${process.execPath}' --import '${HOOK}' '${script}' --help`;
      return new Promise<{ stdout: string; modules: string[] }>((resolve) => {
        execFile(
          'script',
          ['-qfec', command, '/dev/null'],
          { cwd: work, env: { PATH: process.env.PATH, HOME: process.env.HOME, PGBAK_MODULE_LOG: log } },
          (_err, stdout) =>
            resolve({ stdout: stdout.replace(/\r\n/g, '\n'), modules: readFileSync(log, 'utf8').split('\n').filter(Boolean) }),
        );
      });
    };
    for (const cols of [60, 80, 120]) {
      const viaBin = await onTty(cols);
      expect(viaBin.stdout, `${cols} columns`).toBe(reference);
      expect(pgbakModules(viaBin.modules), `${cols} columns`).toEqual([]);
      // The CLI itself, on the same terminal, prints the same text (it does not wrap to the terminal).
      const viaCli = await onTty(cols, CLI_MAIN);
      expect(viaCli.modules.some((m) => m.endsWith('/dist/cli/main.js'))).toBe(true);
      expect(viaCli.stdout, `${cols} columns`).toBe(reference);
    }
  });

  it('npm run build writes them, and so does npm pack (prepack), which CI and installs use', () => {
    const { scripts } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(scripts.build).toMatch(/&& node dist\/cli\/write-help-texts\.js$/);
    expect(scripts.prepare).toBe('npm run build');
    expect(scripts.prepack).toMatch(/&& npm run build$/);
  });
});
