import type { Command } from '@commander-js/extra-typings';
import { buildProgram } from './main.js';

/**
 * What `pgbak --help` (also `-h`, `help`) and each `pgbak <command> --help` (also `-h`,
 * `help <command>`) print (80 columns wide on any terminal: main.ts). `npm run build` writes them to
 * dist/cli/help.json (src/cli/write-help-texts.ts) and bin/pgbak prints them from there without
 * loading the CLI (docs/performance.md, "Start-up"); test/unit/startup.test.ts checks that they
 * equal what the CLI prints.
 */
export interface HelpTexts {
  readonly program: string;
  /** By command name; commander's own `help` command has none. */
  readonly commands: Readonly<Record<string, string>>;
}

/** The file of the texts, beside the built CLI (dist/cli/help.json). */
export const HELP_TEXTS_FILE = 'help.json';

/** The help texts of the CLI's commander definitions, rendered exactly as commander prints them. */
export async function helpTexts(): Promise<HelpTexts> {
  const program = await buildProgram({ outcome: undefined });
  const commands: Record<string, string> = {};
  for (const cmd of program.commands) commands[cmd.name()] = rendered(cmd);
  return { program: rendered(program), commands };
}

/** The help `cmd` writes to stdout (its text and its `addHelpText` parts), no colours. */
function rendered(cmd: Command<any, any, any>): string {
  let text = '';
  cmd.configureOutput({
    writeOut: (s) => {
      text += s;
    },
    getOutHasColors: () => false,
  });
  cmd.outputHelp();
  return text;
}
