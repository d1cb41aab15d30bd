import { Option, type Command } from '@commander-js/extra-typings';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Options shared by every command that acts on jobs. `--all` always means "every job of the
 * config file"; `withAll: false` leaves it out where acting on several jobs means nothing
 * (restore: one backup into one database; daemon: every job unless --job, always).
 */
export function addCommonOptions<C extends Command<any, any, any>>(cmd: C, options: { withAll?: boolean } = {}): C {
  cmd.addOption(new Option('-c, --config <file>', 'config file listing jobs (default: PGBAK_CONFIG, else ./pgbak.yaml when present)'));
  cmd.addOption(new Option('--job <name>', 'act on this job of the config file'));
  if (options.withAll !== false) cmd.addOption(new Option('--all', 'act on every job of the config file'));
  cmd.addOption(new Option('--set <NAME=VALUE>', 'override a variable for this run (repeatable; secrets are refused)').argParser(collect));
  cmd.addOption(new Option('--env-file <file>', 'read variables from this file instead of ./.env'));
  return cmd;
}

/**
 * End a command's `--help` with an "Examples:" section: each example a command line (from
 * `pgbak`) and what it does. test/unit/cli-help.test.ts checks every flag they use exists.
 */
export function addExamples<C extends Command<any, any, any>>(cmd: C, examples: readonly (readonly [string, string])[]): C {
  const width = Math.max(...examples.map(([line]) => line.length));
  const text = ['', 'Examples:', ...examples.map(([line, what]) => `  ${line.padEnd(width)}  # ${what}`), ''].join('\n');
  cmd.addHelpText('after', text);
  // Kept for the test that checks them against the command's options.
  (cmd as unknown as { pgbakExamples: readonly string[] }).pgbakExamples = examples.map(([line]) => line);
  return cmd;
}

/** The example lines of a command (see {@link addExamples}). */
export function examplesOf(cmd: Command<any, any, any>): readonly string[] {
  return (cmd as unknown as { pgbakExamples?: readonly string[] }).pgbakExamples ?? [];
}
