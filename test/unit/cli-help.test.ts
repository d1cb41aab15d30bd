import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { examplesOf } from '../../src/cli/options.js';

const program = buildProgram({ outcome: undefined });
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
