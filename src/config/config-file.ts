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
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError, UsageError } from '../errors/index.js';
import { type JobConfig, resolveJob } from './job.js';
import { type DaemonSettings, daemonSettingsOf } from './job-sections.js';
import { type RawLayer, loadSettings, readDotenv } from './load.js';
import { type Settings, type VariableName, isVariableName, variables } from './schema.js';
import { isValidTimeZone, scheduleProblem } from './schedule.js';

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

export interface LoadedJobs {
  /** One or more jobs, in file order (none only with `requireDatabaseUrl: false` and no DATABASE_URL). */
  readonly jobs: readonly JobConfig[];
  /** Settings of the process as a whole (concurrency, retries, stop timeout, log file …). */
  readonly global: Settings;
  /** The daemon's part of `global`, typed (LOG_FILE absolute). */
  readonly daemon: DaemonSettings;
  /** Absolute path of the config file, or undefined when the jobs came from the environment. */
  readonly source: string | undefined;
  /** Things that work but should be fixed (a password in the file). */
  readonly warnings: readonly string[];
}

/** Settings of the daemon as a whole: not allowed inside one job. */
const GLOBAL_ONLY: readonly VariableName[] = [
  'BACKUP_CONCURRENCY',
  'BACKUP_RETRIES',
  'BACKUP_STOP_TIMEOUT',
  'BACKUP_LOG_LEVEL',
  'METRICS_ADDR',
];
const ALIASES: Readonly<Record<string, VariableName>> = { schedule: 'BACKUP_SCHEDULE', tz: 'BACKUP_TZ' };
const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One `defaults:` block or job, read and checked key by key. */
interface Section {
  readonly path: string;
  /** Valid values by variable name: a layer for loadSettings. */
  readonly layer: Record<string, string>;
  /** Which key set each variable (`jobs[0].schedule`), to name it in later problems. */
  readonly setBy: Map<VariableName, string>;
  /** Variables whose key had a problem (already reported: no follow-on problem for them). */
  readonly failed: Set<VariableName>;
  name?: string;
}

/**
 * Load every job: from the config file when there is one, else one job from the environment.
 * Throws one ConfigError listing every problem, each with its path.
 */
export function loadJobs(options: LoadJobsOptions = {}): LoadedJobs {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const flags = options.flags ?? {};
  const dotenv = readDotenv(cwd, options.envFile);
  const source = findConfigFile(cwd, options.configPath ?? flags['PGBAK_CONFIG'], env, dotenv);
  const base = { env, cwd, dotenv };

  if (source === undefined) {
    const { settings } = loadSettings({ ...base, layers: [flags], requireDatabaseUrl: options.requireDatabaseUrl !== false });
    const daemon = daemonSettingsOf(settings, cwd);
    if (!settings.DATABASE_URL) return { jobs: [], global: settings, daemon, source: undefined, warnings: [] };
    const job = resolveJob(settings, { cwd });
    const problem = checkSchedule(settings, () => undefined, flags);
    if (problem) throw new ConfigError([`${problem.path} (job "${job.name}"): ${problem.message}`]);
    return { jobs: [job], global: settings, daemon, source: undefined, warnings: [] };
  }

  const problems: string[] = [];
  const warnings: string[] = [];
  const lookupEnv = (name: string) => env[name] ?? dotenv[name];
  const file = readConfigFile(source);
  if (file.problems.length > 0) throw new ConfigError(file.problems.map((p) => `${source}: ${p}`));
  const root = file.value;

  let defaults: Section = emptySection('defaults');
  let rawJobs: unknown[] = [];
  if (root !== undefined && !isMapping(root)) {
    problems.push('the config file must be a mapping with "defaults:" and "jobs:"');
  } else if (root !== undefined) {
    for (const key of Object.keys(root)) {
      if (key !== 'defaults' && key !== 'jobs') problems.push(`${key}: unknown key (expected defaults and jobs)`);
    }
    if (root['defaults'] !== undefined && root['defaults'] !== '') {
      if (isMapping(root['defaults'])) defaults = readSection(root['defaults'], 'defaults', 'defaults', lookupEnv, problems, warnings);
      else problems.push('defaults: must be a mapping of settings (retention_days: 30)');
    }
    const jobs = root['jobs'];
    if (Array.isArray(jobs)) rawJobs = jobs;
    else if (jobs !== undefined && jobs !== '') problems.push('jobs: must be a list of jobs (- name: shop)');
  }
  if (root !== undefined && isMapping(root) && rawJobs.length === 0) {
    problems.push('jobs: the config file lists no jobs (add at least one "- name: …" entry)');
  }

  const global = collect(problems, () => loadSettings({ ...base, layers: [defaults.layer, flags], requireDatabaseUrl: false }).settings);

  const sections: Section[] = [];
  const firstByName = new Map<string, string>();
  rawJobs.forEach((raw, i) => {
    const path = `jobs[${i}]`;
    if (!isMapping(raw)) {
      problems.push(`${path}: must be a mapping (name: …, database_url_env: …)`);
      return;
    }
    const section = readSection(raw, path, 'job', lookupEnv, problems, warnings);
    if (section.name !== undefined) {
      const first = firstByName.get(section.name);
      if (first) problems.push(`${path}.name: "${section.name}" is already the name of ${first}`);
      else firstByName.set(section.name, path);
    }
    sections.push(section);
  });

  const jobs: JobConfig[] = [];
  const scheduleProblems = new Map<string, { message: string; jobs: string[] }>();
  for (const section of sections) {
    if (section.name === undefined) continue; // reported by readSection
    const label = `${section.path} (job "${section.name}")`;
    const settings = collect(problems, () =>
      loadSettings({ ...base, layers: [defaults.layer, section.layer, flags], requireDatabaseUrl: false }).settings,
    );
    if (!settings) continue;
    const origin = (name: VariableName) => section.setBy.get(name) ?? defaults.setBy.get(name);
    const schedule = checkSchedule(settings, origin, flags);
    if (schedule) {
      const entry = scheduleProblems.get(schedule.path) ?? { message: schedule.message, jobs: [] };
      entry.jobs.push(section.name);
      scheduleProblems.set(schedule.path, entry);
    }
    if (!settings.DATABASE_URL) {
      if (section.failed.has('DATABASE_URL')) continue;
      problems.push(`${label}: no database: set database_url_env (or database_url) in the job`);
      continue;
    }
    const urlOrigin = origin('DATABASE_URL') ?? 'DATABASE_URL';
    const job = collect(problems, () => resolveJob(settings, { cwd, name: section.name }), (p) => p.replace(/^DATABASE_URL/, urlOrigin));
    if (job) jobs.push(job);
  }
  for (const [path, { message, jobs: names }] of scheduleProblems) {
    problems.push(`${path} (${names.length === 1 ? 'job' : 'jobs'} ${names.map((n) => `"${n}"`).join(', ')}): ${message}`);
  }
  problems.push(...sharedNameProblems(jobs, sections));

  if (problems.length > 0 || !global) {
    throw new ConfigError(unique(problems), {
      hint: `fix ${source} or the variables named above (file keys are the variable names in lower case; see docs/scheduling.md)`,
    });
  }
  return { jobs, global, daemon: daemonSettingsOf(global, cwd), source, warnings };
}

/**
 * The jobs a command acts on: `--job NAME` picks one, `--all` every job; without either, the
 * only job (a file with several jobs then needs one of them). Throws a UsageError naming the jobs.
 */
export function selectJobs(jobs: readonly JobConfig[], selection: { job?: string | undefined; all?: boolean | undefined } = {}): JobConfig[] {
  const names = jobs.map((j) => j.name);
  if (selection.job !== undefined && selection.all) throw new UsageError('use either --job NAME or --all, not both');
  if (selection.all) return [...jobs];
  if (selection.job !== undefined) {
    const found = jobs.find((j) => j.name === selection.job);
    if (!found) throw new UsageError(`no job named "${selection.job}"; the jobs are: ${names.join(', ')}`);
    return [found];
  }
  if (jobs.length === 1) return [...jobs];
  throw new UsageError(`there are ${jobs.length} jobs (${names.join(', ')}): choose one with --job NAME, or --all`);
}

function readSection(
  raw: Record<string, unknown>,
  path: string,
  kind: 'defaults' | 'job',
  lookupEnv: (name: string) => string | undefined,
  problems: string[],
  warnings: string[],
): Section {
  const section = emptySection(path);
  for (const [key, value] of Object.entries(raw)) {
    const at = `${path}.${key}`;
    if (key === 'name') {
      if (kind === 'defaults') problems.push(`${at}: a job's name cannot be a default; name each job`);
      else if (typeof value !== 'string' || !JOB_NAME.test(value)) {
        problems.push(`${at}: must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
      } else section.name = value;
      continue;
    }
    const variable: VariableName | undefined =
      key === 'database_url_env' ? 'DATABASE_URL' : (ALIASES[key] ?? (key === key.toLowerCase() && isVariableName(key.toUpperCase()) ? (key.toUpperCase() as VariableName) : undefined));
    if (variable === undefined || variable === 'PGBAK_CONFIG') {
      const lower = key.toLowerCase();
      const hint = lower !== key && (isVariableName(key.toUpperCase()) || lower in ALIASES) ? ` (write it in lower case: ${lower})` : '';
      problems.push(`${at}: unknown key${hint}`);
      continue;
    }
    const earlier = section.setBy.get(variable);
    if (earlier) {
      problems.push(`${at}: ${earlier.slice(path.length + 1)} already sets ${variable}; keep one of them`);
      continue;
    }
    if (kind === 'job' && GLOBAL_ONLY.includes(variable)) {
      problems.push(`${at}: applies to the whole daemon; set it in defaults or the environment, not in a job`);
      continue;
    }
    const fail = (problem: string) => {
      problems.push(`${at}: ${problem}`);
      section.failed.add(variable);
    };
    const text = asText(value, variable);
    if (typeof text !== 'string') {
      fail(text.problem);
      continue;
    }
    let finalValue = text;
    if (key === 'database_url_env') {
      if (!ENV_NAME.test(text)) {
        fail('must be the name of an environment variable (SHOP_DATABASE_URL)');
        continue;
      }
      const fromEnv = lookupEnv(text);
      if (fromEnv === undefined || fromEnv.trim() === '') {
        fail(`${text} is not set`);
        continue;
      }
      finalValue = fromEnv;
    }
    const spec = variables.find((v) => v.name === variable)!;
    const parsed = spec.schema.safeParse(finalValue);
    if (!parsed.success) {
      // Never echo a value that came from a secret-holding variable.
      const subject = key === 'database_url_env' ? `the value of ${text}` : '';
      for (const issue of parsed.error.issues) fail(`${subject ? subject + ' ' : ''}${issue.message}`);
      continue;
    }
    if (key === 'database_url' && hasPassword(finalValue)) {
      warnings.push(`${at}: contains a password; keep secrets out of the file with database_url_env (or ~/.pgpass)`);
    }
    if (variable === 'STORAGE_SECRET_KEY' && finalValue.trim() !== '') {
      warnings.push(`${at}: a secret key in the file; prefer STORAGE_SECRET_KEY in the environment`);
    }
    section.layer[variable] = finalValue;
    section.setBy.set(variable, at);
  }
  if (kind === 'job' && section.name === undefined && raw['name'] === undefined) problems.push(`${path}.name: is required`);
  return section;
}

/** A scalar as the text an environment variable would hold; lists only for notify_email. */
function asText(value: unknown, variable: VariableName): string | { problem: string } {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    if (variable === 'NOTIFY_EMAIL' && value.every((v) => typeof v === 'string')) return value.join(',');
    return { problem: 'must be a single value, not a list' };
  }
  return { problem: 'must be a single value, not a mapping' };
}

/** The schedule's problem and the key to blame: the job's, the defaults', a flag or the environment. */
function checkSchedule(
  settings: Settings,
  origin: (name: VariableName) => string | undefined,
  flags: Readonly<Record<string, string>>,
): { path: string; message: string } | undefined {
  const blame = (name: VariableName) => origin(name) ?? (flags[name] !== undefined ? `flag ${name}` : name);
  if (!isValidTimeZone(settings.BACKUP_TZ)) {
    return { path: blame('BACKUP_TZ'), message: `unknown time zone "${settings.BACKUP_TZ}" (use an IANA name such as UTC or Europe/Paris)` };
  }
  const problem = scheduleProblem(settings.BACKUP_SCHEDULE, settings.BACKUP_TZ);
  return problem ? { path: blame('BACKUP_SCHEDULE'), message: problem } : undefined;
}

/** Two jobs writing `<db>_<timestamp>` into the same folder or bucket prefix would prune each other. */
function sharedNameProblems(jobs: readonly JobConfig[], sections: readonly Section[]): string[] {
  const problems: string[] = [];
  const pathOf = (job: JobConfig) => sections.find((s) => s.name === job.name)?.path ?? job.name;
  for (let i = 0; i < jobs.length; i++) {
    for (let k = i + 1; k < jobs.length; k++) {
      const a = jobs[i]!;
      const b = jobs[k]!;
      if (a.filePrefix !== b.filePrefix) continue;
      const sameDir = a.backupDir === b.backupDir;
      const sameBucket = a.s3 && b.s3 && a.s3.endpoint === b.s3.endpoint && a.s3.bucket === b.s3.bucket && a.s3.prefix === b.s3.prefix;
      if (!sameDir && !sameBucket) continue;
      const where = sameDir ? `backup_dir ${a.backupDir}` : `s3://${a.s3!.bucket}/${a.s3!.prefix}`;
      problems.push(
        `${pathOf(a)} and ${pathOf(b)} (jobs "${a.name}" and "${b.name}") both back up a database named "${a.database}" into ${where}: ` +
          'give one of them its own backup_dir and storage_prefix, or their retention would delete each other\'s backups',
      );
    }
  }
  return problems;
}

function findConfigFile(cwd: string, explicit: string | undefined, env: RawLayer, dotenv: Record<string, string>): string | undefined {
  if (explicit !== undefined && explicit.trim() !== '') return resolve(cwd, explicit);
  const fromEnv = [env['PGBAK_CONFIG'], dotenv['PGBAK_CONFIG']].find((v) => v !== undefined && v.trim() !== '');
  if (fromEnv !== undefined) return resolve(cwd, fromEnv.trim());
  const implicit = resolve(cwd, 'pgbak.yaml');
  return existsSync(implicit) ? implicit : undefined;
}

/** Parse YAML with the failsafe schema: every scalar stays text, as in the environment. */
function readConfigFile(path: string): { value: unknown; problems: string[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read the config file ${path}: ${(err as Error).message}`], {
      hint: 'check --config / PGBAK_CONFIG, or remove it to use the environment alone',
    });
  }
  const doc = parseDocument(text, { schema: 'failsafe', prettyErrors: true, uniqueKeys: true });
  const problems = [...doc.errors, ...doc.warnings].map((e) => {
    const pos = e.linePos?.[0];
    const message = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    return `${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${message}`;
  });
  if (problems.length > 0) return { value: undefined, problems };
  const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  return { value: value === null || value === '' ? undefined : value, problems: [] };
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

function emptySection(path: string): Section {
  return { path, layer: {}, setBy: new Map(), failed: new Set() };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return false;
  }
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}
