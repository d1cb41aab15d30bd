/**
 * `targets:` in pgbak.yaml (a job's or `defaults:`): the bucket targets a job stores each backup
 * to, in one pass. The first is the job's bucket (what STORAGE_* sets); each further one is an
 * off-site copy, as STORAGE_2_* makes for an environment-only setup, and there may be several.
 *
 * ```yaml
 * targets:
 *   - name: main
 *     endpoint: https://s3.eu-west-1.amazonaws.com
 *     bucket: sweet-backups
 *     region: eu-west-1
 *     access_key_env: MAIN_ACCESS_KEY      # or access_key: AKIA… (an access key is not a secret)
 *     secret_key_env: MAIN_SECRET_KEY      # the secret: an environment variable …
 *   - name: offsite
 *     endpoint: https://minio.offsite.example
 *     bucket: offsite-backups
 *     prefix: shop/                        # default backups/
 *     access_key: pgbak-offsite
 *     secret_key_file: /etc/pgbak/offsite.secret   # … or a file only pgbak's user may read
 *     object_lock: governance              # default off
 * ```
 *
 * A secret key is never written in the file itself. With `targets:` the job ignores STORAGE_2_*.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { transferSettingsOf, type JobConfig, type NamedS3Settings } from './job.js';
import type { Settings, VariableName } from './schema.js';
import { variables } from './schema.js';
import { didYouMean } from './typos.js';

/** One target of the file, checked; its secret key read from the environment or its file. */
export interface FileTarget {
  /** Where it is in the file (`jobs[0].targets[1]`). */
  readonly path: string;
  readonly name: string;
  readonly endpoint: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly region: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly objectLock: 'off' | 'governance' | 'compliance';
}

/** What reading a target needs: where problems go, the environment, the directory relative paths resolve against. */
export interface TargetReading {
  readonly problems: string[];
  readonly lookupEnv: (name: string) => string | undefined;
  readonly cwd: string;
}

const KEYS = [
  'name',
  'endpoint',
  'bucket',
  'prefix',
  'region',
  'access_key',
  'access_key_env',
  'secret_key_env',
  'secret_key_file',
  'object_lock',
] as const;
/** Target names: as STORAGE_2_NAME; `local` and `remote` are what `--from` already means. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const RESERVED = ['local', 'remote'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The variable whose check a key's value passes (the same as STORAGE_*'s). */
const CHECKED_AS: Readonly<Record<string, VariableName>> = {
  endpoint: 'STORAGE_ENDPOINT',
  bucket: 'STORAGE_BUCKET',
  prefix: 'STORAGE_PREFIX',
  region: 'STORAGE_REGION',
  object_lock: 'STORAGE_OBJECT_LOCK',
};
const HINT_SECRET = 'a secret key is never written in the file: use secret_key_env (an environment variable) or secret_key_file';

/** The variables the first target sets (a section setting them too is a conflict). */
export const FIRST_TARGET_VARIABLES: readonly VariableName[] = [
  'STORAGE_ENDPOINT',
  'STORAGE_BUCKET',
  'STORAGE_PREFIX',
  'STORAGE_REGION',
  'STORAGE_ACCESS_KEY',
  'STORAGE_SECRET_KEY',
  'STORAGE_OBJECT_LOCK',
];

/** The first target as a settings layer (STORAGE_*). */
export function firstTargetLayer(t: FileTarget): Partial<Record<VariableName, string>> {
  return {
    STORAGE_ENDPOINT: t.endpoint,
    STORAGE_BUCKET: t.bucket,
    STORAGE_PREFIX: t.prefix,
    STORAGE_REGION: t.region,
    STORAGE_ACCESS_KEY: t.accessKey,
    STORAGE_SECRET_KEY: t.secretKey,
    STORAGE_OBJECT_LOCK: t.objectLock,
  };
}

/** A further target as the job holds it; part size, queue and timeout are the job's STORAGE_* ones. */
export function extraTargetOf(t: FileTarget, settings: Settings): NamedS3Settings {
  return {
    name: t.name,
    endpoint: t.endpoint,
    accessKeyId: t.accessKey,
    secretAccessKey: t.secretKey,
    bucket: t.bucket,
    prefix: t.prefix,
    region: t.region,
    ...transferSettingsOf(settings),
    objectLock: t.objectLock === 'off' ? undefined : t.objectLock,
  };
}

/** A job with the file's targets: the first names its bucket, the others replace STORAGE_2_*. */
export function withFileTargets(job: JobConfig, targets: readonly FileTarget[], settings: Settings): JobConfig {
  return {
    ...job,
    s3: job.s3 && { ...job.s3, name: targets[0]!.name },
    extraTargets: targets.slice(1).map((t) => extraTargetOf(t, settings)),
  };
}

/** Read `targets:`: a list of one or more targets with distinct names. Undefined when it has a problem (reported). */
export function readTargets(value: unknown, at: string, reading: TargetReading): FileTarget[] | undefined {
  const { problems } = reading;
  if (!Array.isArray(value) || value.length === 0) {
    problems.push(`${at}: must be a list of bucket targets (- name: offsite, endpoint: …, bucket: …)`);
    return undefined;
  }
  const before = problems.length;
  const out: FileTarget[] = [];
  const seen = new Map<string, string>();
  value.forEach((raw, i) => {
    const t = readTarget(raw, `${at}[${i}]`, reading);
    if (!t) return;
    const first = seen.get(t.name);
    if (first) problems.push(`${t.path}.name: "${t.name}" is already the name of ${first}; give each target its own name`);
    else seen.set(t.name, t.path);
    out.push(t);
  });
  return problems.length === before ? out : undefined;
}

function readTarget(raw: unknown, at: string, reading: TargetReading): FileTarget | undefined {
  const { problems } = reading;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push(`${at}: must be a mapping (name: offsite, endpoint: …, bucket: …)`);
    return undefined;
  }
  const before = problems.length;
  const entries = raw as Record<string, unknown>;
  const text: Record<string, string> = {};
  for (const [key, v] of Object.entries(entries)) {
    if (key === 'secret_key') {
      problems.push(`${at}.secret_key: not allowed; ${HINT_SECRET}`);
      continue;
    }
    if (!(KEYS as readonly string[]).includes(key)) {
      problems.push(`${at}.${key}: unknown key${didYouMean(key, KEYS) || ` (a target has ${KEYS.join(', ')})`}`);
      continue;
    }
    if (typeof v !== 'string') problems.push(`${at}.${key}: must be a single value`);
    else text[key] = v.trim();
  }
  for (const key of ['name', 'endpoint', 'bucket'] as const) {
    if (text[key] === undefined && entries[key] === undefined) problems.push(`${at}.${key}: is required`);
  }
  if (text['name'] !== undefined) {
    if (!NAME.test(text['name']))
      problems.push(`${at}.name: must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
    else if (RESERVED.includes(text['name']))
      problems.push(`${at}.name: "${text['name']}" is reserved (restore --from local|remote); choose another name`);
  }
  for (const [key, variable] of Object.entries(CHECKED_AS)) {
    if (text[key] === undefined) continue;
    const parsed = variables.find((x) => x.name === variable)!.schema.safeParse(text[key]);
    if (!parsed.success) problems.push(`${at}.${key}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  }
  const accessKey = oneOf(text, at, 'access_key', 'access_key_env', reading);
  const secretKey = oneOf(text, at, 'secret_key_file', 'secret_key_env', reading);
  if (problems.length > before || accessKey === undefined || secretKey === undefined) return undefined;
  return {
    path: at,
    name: text['name']!,
    endpoint: text['endpoint']!,
    bucket: text['bucket']!,
    prefix: text['prefix'] ?? 'backups/',
    region: text['region'] || 'us-east-1',
    accessKey,
    secretKey,
    objectLock: (text['object_lock'] || 'off') as FileTarget['objectLock'],
  };
}

/** A key given inline (`access_key`) or from a file (`secret_key_file`), or by an environment variable's name (`…_env`): exactly one. */
function oneOf(text: Record<string, string>, at: string, plain: string, env: string, reading: TargetReading): string | undefined {
  const { problems } = reading;
  if (text[plain] !== undefined && text[env] !== undefined) {
    problems.push(`${at}: ${plain} and ${env} are both set; keep one of them`);
    return undefined;
  }
  if (text[env] !== undefined) {
    const name = text[env]!;
    if (!ENV_NAME.test(name)) {
      problems.push(`${at}.${env}: must be the name of an environment variable (OFFSITE_SECRET_KEY)`);
      return undefined;
    }
    const value = reading.lookupEnv(name)?.trim();
    if (!value) problems.push(`${at}.${env}: ${name} is not set (in the environment or .env)`);
    return value || undefined;
  }
  if (text[plain] === undefined) {
    problems.push(`${at}: ${env} or ${plain} is required`);
    return undefined;
  }
  if (plain !== 'secret_key_file') return text[plain] || undefined;
  return readSecretFile(text[plain]!, `${at}.${plain}`, reading);
}

/** The first line of a secret file that only its owner (and group) may read. */
function readSecretFile(path: string, at: string, reading: TargetReading): string | undefined {
  const file = isAbsolute(path) ? path : resolve(reading.cwd, path);
  try {
    if ((statSync(file).mode & 0o004) !== 0) {
      reading.problems.push(`${at}: ${file} is readable by every user; chmod 600 ${file} (a secret key must not be world-readable)`);
      return undefined;
    }
    const value = readFileSync(file, 'utf8').split('\n')[0]!.trim();
    if (!value) reading.problems.push(`${at}: ${file} is empty; write the secret key on its first line`);
    return value || undefined;
  } catch (err) {
    reading.problems.push(`${at}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return undefined;
  }
}
