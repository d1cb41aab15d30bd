import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { examplesOf } from '../../src/cli/options.js';
import { PGBAK_BIN } from '../helpers/cli.js';

const program = await buildProgram({ outcome: undefined });
const helpOf = (cmd: { helpInformation(): string; name(): string }) => {
  let after = '';
  const c = cmd as unknown as { outputHelp(o?: unknown): void; configureOutput(o: unknown): void };
  c.configureOutput({ writeOut: (t: string) => (after += t), writeErr: (t: string) => (after += t) });
  c.outputHelp();
  return after;
};

describe('pgbak --help', () => {
  it('every command ends its help with Examples, and every example parses with that command’s own options', () => {
    for (const cmd of program.commands) {
      if (cmd.name() === 'help') continue;
      const examples = examplesOf(cmd);
      expect(examples.length, cmd.name()).toBeGreaterThan(0);
      expect(helpOf(cmd).trimEnd(), cmd.name()).toMatch(/\nExamples:\n(?: {2}pgbak .*\n?)+$/);
      for (const line of examples) {
        const [bin, sub, ...args] = line.split(/\s+/);
        expect(bin).toBe('pgbak');
        expect(sub, line).toBe(cmd.name());
        // parseOptions checks option names and choices without running the action.
        const parsed = cmd.parseOptions(args);
        expect(parsed.unknown, line).toEqual([]);
      }
    }
  });

  it('the program help ends with examples of real commands', () => {
    const names = new Set(program.commands.map((c) => c.name()));
    const examples = examplesOf(program);
    expect(examples.length).toBeGreaterThan(0);
    for (const line of examples) expect(names.has(line.split(/\s+/)[1]!), line).toBe(true);
  });

  it('--all means every job wherever it exists, and only there; restore and daemon have none', () => {
    const has = (name: string, flag: string) => program.commands.find((c) => c.name() === name)!.options.some((o) => o.long === flag);
    for (const name of ['backup', 'list', 'verify', 'prune', 'adopt', 'init', 'status']) {
      const all = program.commands.find((c) => c.name() === name)!.options.find((o) => o.long === '--all');
      expect(all?.description, name).toBe('act on every job of the config file');
    }
    expect(has('restore', '--all')).toBe(false);
    expect(has('daemon', '--all')).toBe(false);
    expect(has('verify', '--every')).toBe(true);
    expect(has('adopt', '--every')).toBe(true);
    expect(has('restore', '--parallel')).toBe(true);
    expect(has('list', '--from')).toBe(true);
    expect(has('list', '--local')).toBe(false);
  });
});

describe('commander errors and bare pgbak (the built bin/pgbak)', () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [PGBAK_BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME } }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('read like pgbak errors and point to the command’s own help', async () => {
    const r = await run(['backup', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("pgbak: error: unknown option '--bogus'\nhint: run `pgbak backup --help` for usage\n");
    expect(r.stdout).toBe('');
    const jobs = await run(['restore', '--latest', '--target', 'x', '--parallel']);
    expect(jobs.code).toBe(2);
    expect(jobs.stderr).toMatch(/^pgbak: error: option '--parallel <N>' argument missing\nhint: run `pgbak restore --help` for usage\n$/);
    // A bad count names the option given, the old --jobs included; --all-databases without a server names its own option.
    for (const option of ['--parallel', '--jobs']) {
      const bad = await run(['restore', '--latest', '--target', 'x', option, '0']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(new RegExp(`^pgbak: error: ${option} must be a whole number of 1 or more \\(got 0\\)\n`));
    }
    const server = await run(['restore', '--all-databases']);
    expect(server.code).toBe(2);
    expect(server.stderr).toMatch(
      /^pgbak: error: --all-databases needs the server to restore into: --target-server URL or --target-env VAR\n/,
    );
  });

  it('bare pgbak prints the help on stderr and exits 2 (a usage error); --help prints it on stdout and exits 0', async () => {
    const bare = await run([]);
    expect(bare.code).toBe(2);
    expect(bare.stdout).toBe('');
    expect(bare.stderr).toMatch(/^Usage: pgbak \[options\] \[command\]/);
    expect(bare.stderr).toMatch(/Examples:\n {2}pgbak backup --dry-run/);
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pgbak/);
  });
});
