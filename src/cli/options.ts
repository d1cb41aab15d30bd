import { Option, type Command } from '@commander-js/extra-typings';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Options shared by every command that acts on jobs. `withAll: false` leaves out `--all` for a
 * command where it means something else (every backup), which that command defines itself.
 */
export function addCommonOptions<C extends Command<any, any, any>>(cmd: C, options: { withAll?: boolean } = {}): C {
  cmd.addOption(new Option('-c, --config <file>', 'config file listing jobs (default: PGBAK_CONFIG, else ./pgbak.yaml when present)'));
  cmd.addOption(new Option('--job <name>', 'act on this job of the config file'));
  if (options.withAll !== false) cmd.addOption(new Option('--all', 'act on every job of the config file'));
  cmd.addOption(new Option('--set <NAME=VALUE>', 'override a variable for this run (repeatable; secrets are refused)').argParser(collect));
  cmd.addOption(new Option('--env-file <file>', 'read variables from this file instead of ./.env'));
  return cmd;
}
