/**
 * Reading the jobs file (see config-file.ts for its format): YAML parsed as text, its
 * `defaults:` block and each job checked key by key into a layer for loadSettings.
 * Problems and warnings are collected, each with its path (`jobs[1].schedule: …`).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ConfigError } from '../errors/index.js';
import { type VariableName, isVariableName, variables } from './schema.js';
import { didYouMean } from './typos.js';
import { FIRST_TARGET_VARIABLES, type FileTarget, firstTargetLayer, readTargets } from './targets-file.js';

/** Settings of the daemon as a whole: not allowed inside one job. */
const GLOBAL_ONLY: readonly VariableName[] = [
  'BACKUP_CONCURRENCY',
  'BACKUP_RETRIES',
  'BACKUP_STOP_TIMEOUT',
  'BACKUP_LOG_LEVEL',
  'METRICS_ADDR',
  'DASHBOARD_TOKEN',
];
const ALIASES: Readonly<Record<string, VariableName>> = { schedule: 'BACKUP_SCHEDULE', tz: 'BACKUP_TZ' };
const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Every key a section may have, for "did you mean". */
const SECTION_KEYS: readonly string[] = [
  'name',
  'database_url_env',
  'targets',
  ...Object.keys(ALIASES),
  ...variables.filter((v) => v.name !== 'PGBAK_CONFIG').map((v) => v.name.toLowerCase()),
];

/** One `defaults:` block or job, read and checked key by key. */
export interface Section {
  readonly path: string;
  /** Valid values by variable name: a layer for loadSettings. */
  readonly layer: Record<string, string>;
  /** Which key set each variable (`jobs[0].schedule`), to name it in later problems. */
  readonly setBy: Map<VariableName, string>;
  /** Variables whose key had a problem (already reported: no follow-on problem for them). */
  readonly failed: Set<VariableName>;
  name?: string;
  /** `targets:` (targets-file.ts), checked; the first is also in `layer` as STORAGE_*. */
  targets?: readonly FileTarget[];
}

/** Where problems and warnings of the file are collected, and how `database_url_env` is looked up. */
export interface FileReading {
  readonly problems: string[];
  readonly warnings: string[];
  /** The environment (then `.env`) value of a variable named by `database_url_env`. */
  readonly lookupEnv: (name: string) => string | undefined;
  /** Where relative paths in the file (a target's secret_key_file) resolve. */
  readonly cwd: string;
}

/** The top level of the file: its `defaults:` section and the raw job entries. */
export interface FileRoot {
  readonly defaults: Section;
  readonly rawJobs: readonly unknown[];
}

/** Parse YAML with the failsafe schema: every scalar stays text, as in the environment. Throws on a syntax error. */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read the config file ${path}: ${(err as Error).message}`], {
      hint: 'check --config / PGBAK_CONFIG, or remove it to use the environment alone',
    });
  }
  // yaml (73 modules) loads only when there is a config file to read; loadJobs stays synchronous.
  const { parseDocument } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  const doc = parseDocument(text, { schema: 'failsafe', prettyErrors: true, uniqueKeys: true });
  const problems = [...doc.errors, ...doc.warnings].map((e) => {
    const pos = e.linePos?.[0];
    const message = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    return `${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${message}`;
  });
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `${path}: ${p}`));
  const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  return value === null || value === '' ? undefined : value;
}

/** Check the top level (`defaults:` and `jobs:` only) and read the `defaults:` section. */
export function readRoot(root: unknown, reading: FileReading): FileRoot {
  const { problems } = reading;
  let defaults = emptySection('defaults');
  let rawJobs: unknown[] = [];
  if (root === undefined) return { defaults, rawJobs };
  if (!isMapping(root)) {
    problems.push('the config file must be a mapping with "defaults:" and "jobs:"');
    return { defaults, rawJobs };
  }
  for (const key of Object.keys(root)) {
    if (key !== 'defaults' && key !== 'jobs')
      problems.push(`${key}: unknown key (expected defaults and jobs)${didYouMean(key, ['defaults', 'jobs'])}`);
  }
  if (root['defaults'] !== undefined && root['defaults'] !== '') {
    if (isMapping(root['defaults'])) defaults = readSection(root['defaults'], 'defaults', 'defaults', reading);
    else problems.push('defaults: must be a mapping of settings (retention_days: 30)');
  }
  const jobs = root['jobs'];
  if (Array.isArray(jobs)) rawJobs = jobs;
  else if (jobs !== undefined && jobs !== '') problems.push('jobs: must be a list of jobs (- name: shop)');
  if (rawJobs.length === 0) problems.push('jobs: the config file lists no jobs (add at least one "- name: …" entry)');
  return { defaults, rawJobs };
}

/** Read each job entry; a name used twice is a problem. */
export function readJobSections(rawJobs: readonly unknown[], reading: FileReading): Section[] {
  const sections: Section[] = [];
  const firstByName = new Map<string, string>();
  rawJobs.forEach((raw, i) => {
    const path = `jobs[${i}]`;
    if (!isMapping(raw)) {
      reading.problems.push(`${path}: must be a mapping (name: …, database_url_env: …)`);
      return;
    }
    const section = readSection(raw, path, 'job', reading);
    if (section.name !== undefined) {
      const first = firstByName.get(section.name);
      if (first) reading.problems.push(`${path}.name: "${section.name}" is already the name of ${first}`);
      else firstByName.set(section.name, path);
    }
    sections.push(section);
  });
  return sections;
}

function readSection(raw: Record<string, unknown>, path: string, kind: 'defaults' | 'job', reading: FileReading): Section {
  const { problems } = reading;
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
    if (key === 'targets') {
      const targets = readTargets(value, at, reading);
      if (targets) section.targets = targets;
      continue;
    }
    const variable = variableOfKey(key, at, kind, section, problems);
    if (variable === undefined) continue;
    const finalValue = readValue(key, value, variable, at, section, reading);
    if (finalValue === undefined) continue;
    section.layer[variable] = finalValue;
    section.setBy.set(variable, at);
  }
  if (kind === 'job' && section.name === undefined && raw['name'] === undefined) problems.push(`${path}.name: is required`);
  if (section.targets) addFirstTarget(section, section.targets[0]!, problems);
  return section;
}

/** The first target is the job's bucket: its STORAGE_* settings; a storage_* key beside `targets:` is a conflict. */
function addFirstTarget(section: Section, first: FileTarget, problems: string[]): void {
  const conflicts = [...section.setBy]
    .filter(([v]) => FIRST_TARGET_VARIABLES.includes(v) || v.startsWith('STORAGE_2_'))
    .map(([, at]) => at);
  for (const at of conflicts) {
    problems.push(`${at}: ${section.path}.targets already names the buckets; set it in the target (${first.path}) instead`);
  }
  for (const [variable, value] of Object.entries(firstTargetLayer(first))) {
    section.layer[variable] = value;
    section.setBy.set(variable as VariableName, first.path);
  }
}

/** The variable a key sets, or undefined when the key is unknown, repeated or not allowed here (reported). */
function variableOfKey(key: string, at: string, kind: 'defaults' | 'job', section: Section, problems: string[]): VariableName | undefined {
  const variable: VariableName | undefined =
    key === 'database_url_env'
      ? 'DATABASE_URL'
      : (ALIASES[key] ??
        (key === key.toLowerCase() && isVariableName(key.toUpperCase()) ? (key.toUpperCase() as VariableName) : undefined));
  if (variable === undefined || variable === 'PGBAK_CONFIG') {
    const lower = key.toLowerCase();
    const hint = lower !== key && (isVariableName(key.toUpperCase()) || lower in ALIASES) ? ` (write it in lower case: ${lower})` : '';
    problems.push(`${at}: unknown key${hint || didYouMean(key, SECTION_KEYS)}`);
    return undefined;
  }
  const earlier = section.setBy.get(variable);
  if (earlier) {
    problems.push(`${at}: ${earlier.slice(section.path.length + 1)} already sets ${variable}; keep one of them`);
    return undefined;
  }
  if (kind === 'job' && GLOBAL_ONLY.includes(variable)) {
    problems.push(`${at}: applies to the whole daemon; set it in defaults or the environment, not in a job`);
    return undefined;
  }
  return variable;
}

/** The checked text of a key's value (the named variable's value for `database_url_env`), or undefined (reported). */
function readValue(
  key: string,
  value: unknown,
  variable: VariableName,
  at: string,
  section: Section,
  reading: FileReading,
): string | undefined {
  const fail = (problem: string) => {
    reading.problems.push(`${at}: ${problem}`);
    section.failed.add(variable);
    return undefined;
  };
  const text = asText(value, variable);
  if (typeof text !== 'string') return fail(text.problem);
  let finalValue = text;
  if (key === 'database_url_env') {
    if (!ENV_NAME.test(text)) return fail('must be the name of an environment variable (SHOP_DATABASE_URL)');
    const fromEnv = reading.lookupEnv(text);
    if (fromEnv === undefined || fromEnv.trim() === '') return fail(`${text} is not set`);
    finalValue = fromEnv;
  }
  const spec = variables.find((v) => v.name === variable)!;
  const parsed = spec.schema.safeParse(finalValue);
  if (!parsed.success) {
    // Never echo a value that came from a secret-holding variable.
    const subject = key === 'database_url_env' ? `the value of ${text}` : '';
    for (const issue of parsed.error.issues) fail(`${subject ? subject + ' ' : ''}${issue.message}`);
    return undefined;
  }
  if (key === 'database_url' && hasPassword(finalValue)) {
    reading.warnings.push(`${at}: contains a password; keep secrets out of the file with database_url_env (or ~/.pgpass)`);
  }
  if ((variable === 'STORAGE_SECRET_KEY' || variable === 'STORAGE_2_SECRET_KEY') && finalValue.trim() !== '') {
    reading.warnings.push(`${at}: a secret key in the file; prefer ${variable} in the environment`);
  }
  return finalValue;
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
