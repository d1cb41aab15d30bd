import { Command, CommanderError } from '@commander-js/extra-typings';
import { TOOL_VERSION } from '../version.js';
import { ExitCode, exitCodeHelp } from '../errors/index.js';
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
 * The commands, in the order `pgbak --help` lists them, each module loaded when the program needs
 * it: a run of one command loads only its own (~15 ms less of every run's start; the help and an
 * unknown command load them all). Their modules load only commander and light modules (errors,
 * logging, model, style) at the top and import the api, the config and the signal handling inside
 * their actions, so `--help` and `--version` start fast (test/unit/startup.test.ts;
 * docs/performance.md, "Start-up").
 */
export const COMMANDS: readonly { readonly name: string; readonly load: () => Promise<Register> }[] = [
  { name: 'backup', load: async () => (await import('./commands/backup.js')).registerBackup },
  { name: 'list', load: async () => (await import('./commands/list.js')).registerList },
  { name: 'restore', load: async () => (await import('./commands/restore.js')).registerRestore },
  { name: 'verify', load: async () => (await import('./commands/verify.js')).registerVerify },
  { name: 'prune', load: async () => (await import('./commands/prune.js')).registerPrune },
  { name: 'adopt', load: async () => (await import('./commands/adopt.js')).registerAdopt },
  { name: 'upload', load: async () => (await import('./commands/upload.js')).registerUpload },
  { name: 'copy', load: async () => (await import('./commands/copy.js')).registerCopy },
  { name: 'recovery-kit', load: async () => (await import('./commands/recovery-kit.js')).registerRecoveryKit },
  { name: 'init', load: async () => (await import('./commands/init.js')).registerInit },
  { name: 'status', load: async () => (await import('./commands/status.js')).registerStatus },
  { name: 'report', load: async () => (await import('./commands/report.js')).registerReport },
  { name: 'daemon', load: async () => (await import('./commands/daemon.js')).registerDaemon },
  { name: 'basebackup', load: async () => (await import('./commands/basebackup.js')).registerBasebackup },
  { name: 'wal-push', load: async () => (await import('./commands/wal-push.js')).registerWalPush },
  { name: 'wal-fetch', load: async () => (await import('./commands/wal-fetch.js')).registerWalFetch },
];

/**
 * The command `argv` runs, when it is one of {@link COMMANDS} and nothing before it but the program's
 * own flags: only that command need be defined. Undefined otherwise (help, a typo: every command).
 */
export function commandOf(argv: readonly string[]): string | undefined {
  for (const arg of argv.slice(2)) {
    if (arg === '-v' || arg === '--verbose') continue;
    return COMMANDS.some((c) => c.name === arg) ? arg : undefined;
  }
  return undefined;
}

/**
 * The commander program of every command (or of `only`); the action that runs stores its outcome
 * in `slot`.
 */
export async function buildProgram(slot: OutcomeSlot, only?: string): Promise<Command> {
  const registers = await Promise.all(COMMANDS.filter((c) => only === undefined || c.name === only).map((c) => c.load()));
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
  for (const register of registers) register(program, slot);
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
  const program = await buildProgram(slot, commandOf(argv));
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
