import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { ConfigError } from '../errors/index.js';
import { type Settings, type VariableName, variables, isVariableName } from './schema.js';

/** Raw string values by variable name; later layers win. */
export type RawLayer = Readonly<Partial<Record<string, string | undefined>>>;

/** Options of {@link loadSettings}. */
export interface LoadSettingsOptions {
  /** The process environment (default: process.env). */
  env?: RawLayer;
  /** Working directory: `.env` is read from here and relative paths resolve against it. */
  cwd?: string;
  /** A `.env` file to read (default `<cwd>/.env` when it exists; `false` for none). Ignored with `dotenv`. */
  envFile?: string | false;
  /** The `.env` values, already read by the caller (loadJobs reads the file once for every job). */
  dotenv?: RawLayer;
  /** Layers applied after the environment, in order (config file job, then flags). */
  layers?: readonly RawLayer[];
  /** Require DATABASE_URL (default true). */
  requireDatabaseUrl?: boolean;
}

/** The merged, validated settings and the directory relative paths resolve against. */
export interface LoadedSettings {
  readonly settings: Settings;
  /** The working directory the settings were loaded for. */
  readonly cwd: string;
}

/** Read a `.env` file into a layer (KEY=value lines, # comments, quotes). */
function readEnvFile(path: string): Record<string, string> {
  try {
    return parseEnv(readFileSync(path, 'utf8')) as Record<string, string>;
  } catch (err) {
    throw new ConfigError([`cannot read ${path}: ${(err as Error).message}`]);
  }
}

/**
 * The `.env` layer: `envFile` when given (it must exist), else `<cwd>/.env` when it exists;
 * nothing with `envFile: false`.
 */
export function readDotenv(cwd: string, envFile: string | false | undefined): Record<string, string> {
  if (envFile === false) return {};
  const path = resolve(cwd, envFile ?? '.env');
  return envFile !== undefined || existsSync(path) ? readEnvFile(path) : {};
}

/**
 * Merge defaults < .env < environment < layers and validate every variable, reporting every
 * problem at once, each with its variable name. Environment values win over `.env` (as with
 * dotenv and systemd's EnvironmentFile), so a deployment can override a checked-in file.
 */
export function loadSettings(options: LoadSettingsOptions = {}): LoadedSettings {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const fromFile = options.dotenv ?? readDotenv(cwd, options.envFile);

  const raw: Partial<Record<VariableName, string>> = {};
  for (const layer of [fromFile, env, ...(options.layers ?? [])]) {
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined && isVariableName(key)) raw[key] = value;
    }
  }

  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const spec of variables) {
    const value = raw[spec.name] ?? spec.default;
    if (value === undefined || (spec.name === 'DATABASE_URL' && value.trim() === '')) {
      if (spec.name === 'DATABASE_URL' && options.requireDatabaseUrl !== false) {
        problems.push('DATABASE_URL: is required (e.g. postgresql://user:pass@host:5432/db)');
      }
      out[spec.name] = undefined;
      continue;
    }
    const result = (spec.schema as import('zod').ZodType<unknown, string>).safeParse(value);
    if (result.success) {
      out[spec.name] = result.data;
    } else {
      const shown = 'secret' in spec && spec.secret ? '***' : JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
      for (const issue of result.error.issues) problems.push(`${spec.name}=${shown}: ${issue.message}`);
    }
  }
  const settings = out as Settings;
  if (problems.length > 0) {
    throw new ConfigError(problems, {
      hint: 'fix the variables above (environment, .env, config file or flags); `pgbak --help` lists them',
    });
  }
  return { settings, cwd };
}
