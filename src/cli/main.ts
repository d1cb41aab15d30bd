import { Command, CommanderError } from '@commander-js/extra-typings';
import { TOOL_VERSION } from '../version.js';
import { ExitCode, exitCodeHelp } from '../errors/index.js';
import { registerBackup } from './commands/backup.js';
import { registerList } from './commands/list.js';
import { registerRestore } from './commands/restore.js';
import { registerVerify } from './commands/verify.js';
import { registerInit } from './commands/init.js';
import { registerPrune } from './commands/prune.js';
import { registerDaemon } from './commands/daemon.js';
import { registerStatus } from './commands/status.js';
import { registerAdopt } from './commands/adopt.js';
import { registerUpload } from './commands/upload.js';
import { registerCopy } from './commands/copy.js';
import { registerReport } from './commands/report.js';
import { registerRecoveryKit } from './commands/recovery-kit.js';
import { registerBasebackup } from './commands/basebackup.js';
import { registerWalPush } from './commands/wal-push.js';
import { registerWalFetch } from './commands/wal-fetch.js';
import { errorText, renderError } from './render.js';
import { releaseHeldErrors, setVerbose } from './context.js';
import { clearLiveLine } from './progress.js';
import type { OutcomeSlot } from './outcome.js';
import { addExamples } from './options.js';
import { HELP_VARIABLES } from './help-variables.js';

function helpFooter(): string {
  const vars = HELP_VARIABLES.map(([name, description, dflt]) => `  ${name.padEnd(22)} ${description}${dflt ? ` [${dflt}]` : ''}`);
  const codes = exitCodeHelp.map(([code, text]) => `  ${String(code).padStart(3)}  ${text}`);
  return [
    '',
    'Configuration (environment, ./.env, config file, --set NAME=VALUE; later wins):',
    ...vars,
    '',
    'Exit codes:',
    ...codes,
    '',
  ].join('\n');
}

/** The width help is wrapped to, whatever the terminal's. */
const HELP_WIDTH = 80;

/** How a command joins the program: its action puts what it did in `slot`. */
type Register = (program: Command, slot: OutcomeSlot) => void;

/**
 * The commands, in the order `pgbak --help` lists them. Their modules load only commander and
 * light modules (errors, logging, model, style) at the top and import the api, the config and the
 * signal handling inside their actions, so `--help` and `--version` start fast
 * (test/unit/startup.test.ts; docs/performance.md, "Start-up").
 */
const COMMANDS: readonly Register[] = [
  registerBackup,
  registerList,
  registerRestore,
  registerVerify,
  registerPrune,
  registerAdopt,
  registerUpload,
  registerCopy,
  registerRecoveryKit,
  registerInit,
  registerStatus,
  registerReport,
  registerDaemon,
  registerBasebackup,
  registerWalPush,
  registerWalFetch,
];

/** The commander program of every command; the action that runs stores its outcome in `slot`. */
export function buildProgram(slot: OutcomeSlot): Command {
  const program = new Command()
    .name('pgbak')
    .description('PostgreSQL backups: pg_dump → gpg → local disk + S3/MinIO, manifests, retention, verified restores')
    .version(TOOL_VERSION, '-V, --version')
    .option('-v, --verbose', 'on a terminal, show every log line (INFO too) as it happens; without it: warnings, errors and the result')
    .showHelpAfterError('hint: run `pgbak --help` for usage')
    // Commander's own errors ("error: unknown option …") read like pgbak's: `pgbak: error: …`.
    .configureOutput({ outputError: (text, write) => write(`pgbak: ${text}`) })
    .exitOverride();
  program.addHelpText('after', helpFooter());
  addExamples(program, [
    ['pgbak backup --dry-run', 'check everything, change nothing'],
    ['pgbak backup', 'one backup, uploaded, then retention'],
    ['pgbak list', 'every backup and its state'],
    ['pgbak restore --latest --target shop_copy --create', 'restore the newest good backup into a new database'],
    ['pgbak status', 'is the newest good backup recent enough?'],
  ]);
  for (const register of COMMANDS) register(program, slot);
  program.hook('preAction', () => setVerbose(Boolean(program.opts().verbose)));
  // A mistake in a command's flags points to that command's help.
  for (const cmd of program.commands) cmd.showHelpAfterError(`hint: run \`pgbak ${cmd.name()} --help\` for usage`);
  // Help is 80 columns wide on any terminal (as git's and pg_dump's): the same text everywhere, so
  // bin/pgbak can print the copy `npm run build` rendered (src/cli/help-texts.ts) without loading the CLI.
  for (const cmd of [program, ...program.commands])
    cmd.configureOutput({ getOutHelpWidth: () => HELP_WIDTH, getErrHelpWidth: () => HELP_WIDTH });
  return program;
}

/**
 * Run the CLI on `argv` and return its exit code (bin/pgbak exits with it). The one place that
 * prints errors: a command's outcome errors, then anything thrown, each once through renderError.
 */
export async function main(argv: string[] = process.argv): Promise<number> {
  const slot: OutcomeSlot = { outcome: undefined };
  const program = buildProgram(slot);
  try {
    await program.parseAsync(argv);
    if (slot.outcome) {
      showHeldErrors(slot.outcome.errors);
      for (const e of slot.outcome.errors) renderError(e);
      return slot.outcome.exitCode;
    }
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.ok;
      // Bare `pgbak`: the help, on stderr (it is not what a script asked for), and a usage error's exit code.
      if (err.code === 'commander.help') return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      // A mistyped restore_command must stop recovery, not read as "not archived" (any code up to 125).
      if (argv.slice(2).includes('wal-fetch')) return ExitCode.walFetchFailed;
      return ExitCode.usage;
    }
    showHeldErrors([err]);
    return renderError(err);
  }
}

/** Before the errors are rendered: the progress line goes, then the held ERROR log lines they do not repeat. */
function showHeldErrors(errors: readonly unknown[]): void {
  clearLiveLine();
  releaseHeldErrors(errors.map(errorText));
}
