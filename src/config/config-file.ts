/**
 * The jobs file: many databases, each with its own schedule, storage and retention.
 *
 * Found at `--config FILE`, else PGBAK_CONFIG, else `./pgbak.yaml` when it exists. Without one,
 * the environment alone describes one job (the seed's single-database case), named after the
 * database.
 *
 * ```yaml
 * defaults:            # applies to every job
 *   storage_bucket: sweet-backups
 *   retention_days: 30
 * jobs:
 *   - name: shop
 *     database_url_env: SHOP_DATABASE_URL   # name of an env var holding the URL (secrets stay out of the file)
 *     schedule: "0 0,6,12,18 * * *"
 *     gpg_recipient: backups@example.com
 *   - name: crm
 *     database_url: postgresql://crm@db2/crm  # allowed, but a password in it is a warning
 *     storage_prefix: crm/
 * ```
 *
 * Keys are the variable names in lower case (`retention_days` is RETENTION_DAYS), plus `name`
 * (jobs only: letters, digits, `.`, `_`, `-`), `database_url_env`, and `schedule` / `tz` as short
 * aliases of `backup_schedule` / `backup_tz`. Values are read as text, exactly like environment
 * variables (`30`, `true`, `"0 6 * * *"`); `notify_email` may also be a list; an empty value unsets
 * an optional setting (`gpg_recipient:` turns encryption off for one job). Settings of the daemon
 * as a whole (backup_concurrency, backup_retries, backup_stop_timeout, backup_log_level,
 * metrics_addr) belong in `defaults:` or the environment, not in a job. Relative paths resolve
 * against the working directory, as in the environment: prefer absolute paths in the file.
 *
 * Layering for each job: built-in defaults < .env < environment < file `defaults:` < the job's
 * keys < flags. Every problem is reported at once, each with its path (`jobs[1].schedule: …`).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../errors/index.js';
import type { Redactor } from '../logging/redact.js';
import { type JobConfig, resolveJob } from './job.js';
import { checkSchedule, sharedNameProblems } from './job-checks.js';
import { type FileReading, type Section, readConfigFile, readJobSections, readRoot } from './job-file.js';
import { type DaemonSettings, daemonSettingsOf } from './job-sections.js';
import { type RawLayer, loadSettings, readDotenv } from './load.js';
import type { Settings, VariableName } from './schema.js';
import { redactorOf } from './secrets.js';
import { applyDotenvForChildren } from './child-dotenv.js';
import { unknownVariableWarnings } from './typos.js';
import { withFileTargets } from './targets-file.js';

/** Kept here for its callers; it lives in select-jobs.ts. */
export { selectJobs } from './select-jobs.js';

/** Options of {@link loadJobs}: everything it reads is injectable. */
export interface LoadJobsOptions {
  /** The process environment (default: process.env). */
  env?: RawLayer;
  /** Working directory: `.env`, `./pgbak.yaml` and relative paths are found here. */
  cwd?: string;
  /** `--config FILE`: must exist. */
  configPath?: string;
  /** Flag values by variable name (`{ BACKUP_DIR: '/srv/backups' }`); they win over everything. */
  flags?: Readonly<Record<string, string>>;
  /** A `.env` file (default `<cwd>/.env` when it exists; false for none). */
  envFile?: string | false;
  /**
   * Without a config file, require DATABASE_URL (default true). When false and it is unset, no
   * job is returned, only the global settings: `pgbak status` on a host with storage variables only.
   */
  requireDatabaseUrl?: boolean;
}

/** What {@link loadJobs} returns. */
export interface LoadedJobs {
  /** One or more jobs, in file order (none only with `requireDatabaseUrl: false` and no DATABASE_URL). */
  readonly jobs: readonly JobConfig[];
  /** Settings of the process as a whole (concurrency, retries, stop timeout, log file …). */
  readonly global: Settings;
  /** The daemon's part of `global`, typed (LOG_FILE absolute). */
  readonly daemon: DaemonSettings;
  /** Absolute path of the config file, or undefined when the jobs came from the environment. */
  readonly source: string | undefined;
  /**
   * Things that work but should be fixed: a password in the file, an unknown variable that looks
   * like one of pgbak's in `.env` or the environment (`unknown variable RETENTION_DAY in .env
   * (ignored); did you mean RETENTION_DAYS?`). The CLI logs each as a warning.
   */
  readonly warnings: readonly string[];
  /**
   * Masks the secrets of every loaded job and of the global settings (STORAGE_SECRET_KEY, the
   * passwords of DATABASE_URL, VERIFY_DATABASE_URL and NOTIFY_SMTP_URL): give it to the logger
   * (`new LineLogger({ redactor })`) and to whatever prints.
   */
  readonly redactor: Redactor;
}

/** What every step of loading shares. */
interface LoadContext {
  readonly env: RawLayer;
  readonly cwd: string;
  /** The `.env` values, read once. */
  readonly dotenv: Record<string, string>;
  readonly flags: Readonly<Record<string, string>>;
  /** Warnings about `.env` and the environment (unknown variables). */
  readonly warnings: readonly string[];
}

/** A schedule problem shared by several jobs is reported once, naming them. */
type ScheduleProblems = Map<string, { message: string; jobs: string[] }>;

/**
 * Load every job: from the config file when there is one, else one job from the environment.
 * Throws one ConfigError listing every problem, each with its path.
 */
export function loadJobs(options: LoadJobsOptions = {}): LoadedJobs {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const flags = options.flags ?? {};
  const dotenv = readDotenv(cwd, options.envFile);
  // The real process: `.env`'s GNUPGHOME reaches gpg as if it were in the environment.
  if (options.env === undefined) applyDotenvForChildren(dotenv, cwd);
  const envFileName = typeof options.envFile === 'string' ? options.envFile : '.env';
  const warnings = [...unknownVariableWarnings(dotenv, envFileName), ...unknownVariableWarnings(env, 'the environment')];
  const context: LoadContext = { env, cwd, dotenv, flags, warnings };
  try {
    const source = findConfigFile(cwd, options.configPath ?? flags['PGBAK_CONFIG'], env, dotenv);
    if (source === undefined) return loadFromEnvironment(context, options.requireDatabaseUrl !== false);
    return loadFromFile(source, context);
  } catch (err) {
    // A typo is often the cause (DATABSE_URL in .env, then "DATABASE_URL: is required"): name it with the problems.
    if (!(err instanceof ConfigError) || warnings.length === 0) throw err;
    throw new ConfigError([...err.problems, ...warnings], { hint: err.hint, cause: err });
  }
}

/** Settings of the layers over defaults < .env < environment. */
function settingsOf(context: LoadContext, layers: readonly RawLayer[], requireDatabaseUrl = false): Settings {
  const { env, cwd, dotenv } = context;
  return loadSettings({ env, cwd, dotenv, layers, requireDatabaseUrl }).settings;
}

/** No config file: one job (or none) from the environment and flags. */
function loadFromEnvironment(context: LoadContext, requireDatabaseUrl: boolean): LoadedJobs {
  const settings = settingsOf(context, [context.flags], requireDatabaseUrl);
  const loaded = {
    global: settings,
    daemon: daemonSettingsOf(settings, context.cwd),
    source: undefined,
    warnings: context.warnings,
    redactor: redactorOf([settings]),
  };
  if (!settings.DATABASE_URL) return { ...loaded, jobs: [] };
  const job = resolveJob(settings, { cwd: context.cwd });
  const problem = checkSchedule(settings, () => undefined, context.flags);
  if (problem) throw new ConfigError([`${problem.path} (job "${job.name}"): ${problem.message}`]);
  return { ...loaded, jobs: [job] };
}

/** The jobs of a config file, over the environment; every problem at once. */
function loadFromFile(source: string, context: LoadContext): LoadedJobs {
  const reading: FileReading = {
    problems: [],
    warnings: [],
    lookupEnv: (name) => context.env[name] ?? context.dotenv[name],
    cwd: context.cwd,
  };
  const { problems, warnings } = reading;
  const { defaults, rawJobs } = readRoot(readConfigFile(source), reading);
  const global = collect(problems, () => settingsOf(context, [defaults.layer, context.flags]));
  const sections = readJobSections(rawJobs, reading);
  const { jobs, settings } = resolveSections(sections, defaults, context, problems);
  problems.push(...sharedNameProblems(jobs, sections));
  if (problems.length > 0 || !global) {
    throw new ConfigError(unique(problems), {
      hint: `fix ${source} or the variables named above (file keys are the variable names in lower case; see docs/scheduling.md)`,
    });
  }
  // The further targets' secret keys are no variables: named here so that they are masked too.
  const redactor = redactorOf(
    [global, ...settings],
    jobs.flatMap((j) => (j.extraTargets ?? []).map((t) => t.secretAccessKey)),
  );
  return { jobs, global, daemon: daemonSettingsOf(global, context.cwd), source, warnings: [...context.warnings, ...warnings], redactor };
}

/** Resolve each named job section over the defaults, with the settings of each job; problems are collected. */
function resolveSections(
  sections: readonly Section[],
  defaults: Section,
  context: LoadContext,
  problems: string[],
): { jobs: JobConfig[]; settings: Settings[] } {
  const jobs: JobConfig[] = [];
  const settings: Settings[] = [];
  const scheduleProblems: ScheduleProblems = new Map();
  for (const section of sections) {
    if (section.name === undefined) continue; // reported by readJobSections
    const resolved = resolveSection(section, section.name, defaults, context, problems, scheduleProblems);
    if (resolved) {
      jobs.push(resolved.job);
      settings.push(resolved.settings);
    }
  }
  for (const [path, { message, jobs: names }] of scheduleProblems) {
    problems.push(`${path} (${names.length === 1 ? 'job' : 'jobs'} ${names.map((n) => `"${n}"`).join(', ')}): ${message}`);
  }
  return { jobs, settings };
}

/** One job: its settings (defaults < job keys < flags), its schedule checked, its database required. */
function resolveSection(
  section: Section,
  name: string,
  defaults: Section,
  context: LoadContext,
  problems: string[],
  scheduleProblems: ScheduleProblems,
): { job: JobConfig; settings: Settings } | undefined {
  const label = `${section.path} (job "${name}")`;
  const settings = collect(problems, () => settingsOf(context, [defaults.layer, section.layer, context.flags]));
  if (!settings) return undefined;
  const origin = (variable: VariableName) => section.setBy.get(variable) ?? defaults.setBy.get(variable);
  const schedule = checkSchedule(settings, origin, context.flags);
  if (schedule) {
    const entry = scheduleProblems.get(schedule.path) ?? { message: schedule.message, jobs: [] };
    entry.jobs.push(name);
    scheduleProblems.set(schedule.path, entry);
  }
  if (!settings.DATABASE_URL) {
    if (!section.failed.has('DATABASE_URL')) problems.push(`${label}: no database: set database_url_env (or database_url) in the job`);
    return undefined;
  }
  const urlOrigin = origin('DATABASE_URL') ?? 'DATABASE_URL';
  const job = collect(
    problems,
    () => resolveJob(settings, { cwd: context.cwd, name }),
    (p) => p.replace(/^DATABASE_URL/, urlOrigin),
  );
  const targets = section.targets ?? defaults.targets;
  return job && { job: targets ? withFileTargets(job, targets, settings) : job, settings };
}

function findConfigFile(cwd: string, explicit: string | undefined, env: RawLayer, dotenv: Record<string, string>): string | undefined {
  if (explicit !== undefined && explicit.trim() !== '') return resolve(cwd, explicit);
  const fromEnv = [env['PGBAK_CONFIG'], dotenv['PGBAK_CONFIG']].find((v) => v !== undefined && v.trim() !== '');
  if (fromEnv !== undefined) return resolve(cwd, fromEnv.trim());
  const implicit = resolve(cwd, 'pgbak.yaml');
  return existsSync(implicit) ? implicit : undefined;
}

/** Run `fn`; a ConfigError's problems go to `problems` (mapped) and undefined is returned. */
function collect<T>(problems: string[], fn: () => T, map: (p: string) => string = (p) => p): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems.map(map));
    return undefined;
  }
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}
