import type { JobConfig } from '../config/job.js';
import type { Settings } from '../config/schema.js';
import { UsageError } from '../errors/index.js';
import { LineLogger, type LogLevel } from '../logging/logger.js';
import { useRedactor } from './shown.js';
import { err as stderrStyle } from './style.js';

/** Options every job-oriented command accepts. */
export interface CommonFlags {
  config?: string | undefined;
  job?: string | undefined;
  all?: boolean | undefined;
  set?: string[] | undefined;
  envFile?: string | undefined;
}

export interface CliContext {
  readonly jobs: JobConfig[];
  readonly global: Settings;
  readonly logger: LineLogger;
  readonly warnings: readonly string[];
}

/**
 * `--set NAME=VALUE` overrides any variable for one run. Secrets are refused here: argv is
 * readable by every user of the machine (`ps`), so passwords and keys belong in the
 * environment, `.env` or the config file.
 */
export async function flagLayer(
  sets: readonly string[] = [],
  extra: Record<string, string | undefined> = {},
): Promise<Record<string, string>> {
  // Loaded here, not at the top: the schema loads zod, which `pgbak --help` must not (test/unit/startup.test.ts).
  const [{ isVariableName, variableNames }, { didYouMean }] = await Promise.all([
    import('../config/schema.js'),
    import('../config/typos.js'),
  ]);
  const out: Record<string, string> = {};
  for (const item of sets) {
    const eq = item.indexOf('=');
    const name = eq > 0 ? item.slice(0, eq) : '';
    if (!isVariableName(name))
      throw new UsageError(
        `--set ${eq > 0 ? name : item}: not a pgbak variable (expected NAME=VALUE; \`pgbak --help\` lists them)${didYouMean(name, variableNames)}`,
      );
    out[name] = item.slice(eq + 1);
  }
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
  for (const name of ['STORAGE_SECRET_KEY', 'STORAGE_2_SECRET_KEY'] as const) {
    if (out[name] !== undefined) {
      throw new UsageError(`${name} is refused on the command line (it would show in the process list)`, {
        hint: 'set it in the environment, in .env or in the config file',
      });
    }
  }
  for (const name of ['DATABASE_URL', 'VERIFY_DATABASE_URL', 'NOTIFY_SMTP_URL'] as const) {
    const value = out[name];
    if (value !== undefined && /:\/\/[^/@]*:[^/@]*@/.test(value)) {
      throw new UsageError(`${name} with a password is refused on the command line (it would show in the process list)`, {
        hint: 'put the URL in the environment or .env, or use a ~/.pgpass file',
      });
    }
  }
  return out;
}

/** `-v`/`--verbose` (a global option, set by main before the command runs). */
let verbose = false;
export function setVerbose(value: boolean): void {
  verbose = value;
}

/** Every logger the commands made: main shows their held ERROR lines that its rendered errors do not cover. */
const loggers = new Set<LineLogger>();

/** Show the held ERROR lines of every command logger that none of `shown` (the rendered errors) covers. */
export function releaseHeldErrors(shown: readonly string[] = []): void {
  for (const logger of loggers) logger.releaseHeldErrors(shown);
}

/**
 * How log lines reach stderr. On a terminal without --verbose: warnings and errors only (LOG_FILE
 * keeps every line at BACKUP_LOG_LEVEL), errors held back so a failure shows once, as main's
 * `pgbak: error:` line, and the level word coloured. Anywhere else (cron, systemd, pipes, tests)
 * every line at BACKUP_LOG_LEVEL, plain, as it happens.
 */
export function stderrLogOptions(
  level: LogLevel,
  options: { isTTY?: boolean; verbose?: boolean } = {},
): { stderrLevel: LogLevel; holdErrors: boolean; decorateStderr?: (level: LogLevel, line: string) => string } {
  const tty = options.isTTY ?? Boolean(process.stderr.isTTY);
  const quiet = tty && !(options.verbose ?? verbose);
  const s = stderrStyle();
  const colour = { debug: s.dim, info: s.dim, warn: s.warn, error: s.fail } as const;
  return {
    stderrLevel: quiet && (level === 'debug' || level === 'info') ? 'warn' : level,
    holdErrors: quiet,
    ...(tty && s.enabled
      ? {
          decorateStderr: (lvl: LogLevel, line: string) =>
            line.replace(/^(\S+) (\S+)/, (_m, time: string, word: string) => `${s.dim(time)} ${colour[lvl](word)}`),
        }
      : {}),
  };
}

export async function loadContext(
  flags: CommonFlags,
  options: { extraFlags?: Record<string, string | undefined>; openLogFile: boolean; requireJobs?: boolean; allByDefault?: boolean },
): Promise<CliContext> {
  const layer = await flagLayer(flags.set, options.extraFlags);
  // The config (yaml, zod) is loaded when a command runs, not when pgbak starts.
  const { loadJobs, selectJobs } = await import('../config/config-file.js');
  const loaded = loadJobs({ configPath: flags.config, flags: layer, ...(flags.envFile ? { envFile: flags.envFile } : {}) });
  useRedactor(loaded.redactor);
  const jobs = selectJobs(loaded.jobs, { job: flags.job, all: flags.all ?? options.allByDefault });
  const global = loaded.global;
  const logger = new LineLogger({
    level: global.BACKUP_LOG_LEVEL,
    ...stderrLogOptions(global.BACKUP_LOG_LEVEL),
    file: options.openLogFile ? (jobs[0]?.logFile ?? undefined) : undefined,
    redactor: loaded.redactor,
  });
  if (loggers.size === 0) process.once('exit', () => releaseHeldErrors());
  loggers.add(logger);
  for (const w of loaded.warnings) logger.warn(w);
  return { jobs, global, logger, warnings: loaded.warnings };
}

export function writeJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
