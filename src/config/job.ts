import { createHash } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../errors/index.js';
import { type JobSections, absolutePath, jobSectionsOf } from './job-sections.js';
import type { Compression } from './parsers.js';
import type { ServerRunRef } from '../model/server-run-ref.js';
import type { Settings } from './schema.js';

/** S3 settings of a job; `upload` is false when keys are missing or --no-upload was given. */
export interface S3Settings {
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly region: string;
  /** Bytes, or undefined for automatic (from the database size). */
  readonly partSize: number | undefined;
  readonly queueSize: number;
  /** STORAGE_TIMEOUT in ms (S3Backend's default when absent). */
  readonly timeoutMs?: number | undefined;
  /**
   * STORAGE_OBJECT_LOCK: each object of a backup is uploaded with this retention mode and the
   * bucket must have Object Lock; deletes then remove specific versions. Undefined: off.
   */
  readonly objectLock?: 'governance' | 'compliance' | undefined;
  /** The target's name: `primary` unless pgbak.yaml's `targets:` names it (undefined: `primary`). */
  readonly name?: string | undefined;
}

/** A bucket target with its name (`primary` for STORAGE_*, `secondary` or STORAGE_2_NAME for STORAGE_2_*). */
export interface NamedS3Settings extends S3Settings {
  readonly name: string;
}

/** The name of the first bucket target (STORAGE_*). */
export const PRIMARY_TARGET = 'primary';

/** How long backups are kept (RETENTION_DAYS, BACKUP_KEEP_*). */
export interface RetentionSettings {
  readonly days: number;
  readonly keepMin: number;
  readonly keepDaily: number;
  readonly keepWeekly: number;
  readonly keepMonthly: number;
}

/** Everything one backup job needs, resolved and validated, in typed sections. */
export interface JobConfig extends JobSections {
  /** Job name: the config file's name, else the database name. */
  readonly name: string;
  readonly databaseUrl: string;
  /** Database name from the URL. */
  readonly database: string;
  /** Database name made safe for file names (the artifact prefix). */
  readonly filePrefix: string;
  /** BACKUP_DIR, absolute. */
  readonly backupDir: string;
  /** LOG_FILE, absolute; undefined: no log file. */
  readonly logFile: string | undefined;
  /** BACKUP_COMPRESSION. */
  readonly compression: Compression;
  /** GPG_RECIPIENT; undefined: no encryption. */
  readonly gpgRecipient: string | undefined;
  /** AGE_RECIPIENTS (never together with GPG_RECIPIENT) and AGE_IDENTITY_FILE (absolute). */
  readonly age: AgeSettings;
  /** S3 settings when both keys are set, else undefined. Its target name is `primary`. */
  readonly s3: S3Settings | undefined;
  /**
   * Further bucket targets (STORAGE_2_*: an off-site copy), each with its own name; a run streams
   * to them in the same pass as to `s3`. Empty without STORAGE_2_ACCESS_KEY / STORAGE_2_SECRET_KEY.
   */
  readonly extraTargets?: readonly NamedS3Settings[] | undefined;
  readonly retention: RetentionSettings;
  /** Set on the per-database unit of a whole-server run (api/server-run.ts): recorded in its manifest. */
  readonly serverRun?: ServerRunRef | undefined;
}

/** age encryption (AGE_RECIPIENTS) and decryption (AGE_IDENTITY_FILE). */
export interface AgeSettings {
  /** The `age1…` keys given inline, or the recipients file (absolute); undefined: no age encryption. */
  readonly recipients: { readonly keys: readonly string[] } | { readonly file: string } | undefined;
  /** The identity file that decrypts age backups (restore, verify); undefined: none configured. */
  readonly identityFile: string | undefined;
}

/** Database name from a postgres URL; throws a ConfigError when there is none. */
export function databaseNameOf(url: string): string {
  let name = '';
  try {
    name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  } catch {
    /* reported below */
  }
  if (!name) {
    throw new ConfigError(['DATABASE_URL: must name a database (postgresql://user:pass@host:5432/dbname)'], {
      hint: 'the database is the path after host:port, e.g. DATABASE_URL=postgresql://bak:secret@db.example:5432/shop; percent-encode special characters (a space is %20)',
    });
  }
  return name;
}

/** Characters a database name may have and keep as its file prefix, unchanged. */
const PLAIN_NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * The file prefix of a database: injective, so two databases never share backup names, the lock,
 * the last-run record or retention decisions. A plain ASCII name (`[A-Za-z0-9_.-]`, as the guide's
 * `sweet_narcisse`) is its own prefix. Any other name is made file-safe (`_` for each other
 * character) and gets `~` plus the first 10 hex digits of the name's SHA-256: `shop archive` →
 * `shop_archive~4b1a…`. `~` never occurs in a plain name, so an encoded prefix can never equal
 * a plain one, and two names with the same safe form differ in their hash.
 */
export function filePrefixOf(database: string): string {
  if (PLAIN_NAME.test(database)) return database;
  const safe = database.normalize('NFC').replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${safe}~${createHash('sha256').update(database, 'utf8').digest('hex').slice(0, 10)}`;
}

/** Where a job's backups live: BACKUP_DIR (absolute) and the S3 settings when both keys are set. */
/** How every bucket target of a job transfers: STORAGE_PART_SIZE, STORAGE_QUEUE_SIZE and STORAGE_TIMEOUT are the job's, not a target's. */
export function transferSettingsOf(settings: Pick<Settings, 'STORAGE_PART_SIZE' | 'STORAGE_QUEUE_SIZE' | 'STORAGE_TIMEOUT'>): {
  partSize: number | undefined;
  queueSize: number;
  timeoutMs: number;
} {
  return {
    partSize: settings.STORAGE_PART_SIZE === 'auto' ? undefined : settings.STORAGE_PART_SIZE,
    queueSize: settings.STORAGE_QUEUE_SIZE,
    timeoutMs: settings.STORAGE_TIMEOUT,
  };
}

export function resolveStorage(settings: Settings, options: { cwd: string }): Pick<JobConfig, 'backupDir' | 's3' | 'extraTargets'> {
  const hasKeys = Boolean(settings.STORAGE_ACCESS_KEY && settings.STORAGE_SECRET_KEY);
  const second: NamedS3Settings[] =
    settings.STORAGE_2_ACCESS_KEY && settings.STORAGE_2_SECRET_KEY
      ? [
          {
            name: settings.STORAGE_2_NAME,
            endpoint: settings.STORAGE_2_ENDPOINT ?? settings.STORAGE_ENDPOINT,
            accessKeyId: settings.STORAGE_2_ACCESS_KEY,
            secretAccessKey: settings.STORAGE_2_SECRET_KEY,
            bucket: settings.STORAGE_2_BUCKET ?? settings.STORAGE_BUCKET,
            prefix: settings.STORAGE_2_PREFIX,
            region: settings.STORAGE_2_REGION,
            ...transferSettingsOf(settings),
            // Its own setting: the off-site bucket is often another provider's, with or without Object Lock.
            objectLock: settings.STORAGE_2_OBJECT_LOCK === 'off' ? undefined : settings.STORAGE_2_OBJECT_LOCK,
          },
        ]
      : [];
  return {
    extraTargets: second,
    backupDir: isAbsolute(settings.BACKUP_DIR) ? settings.BACKUP_DIR : resolve(options.cwd, settings.BACKUP_DIR),
    s3: hasKeys
      ? {
          endpoint: settings.STORAGE_ENDPOINT,
          accessKeyId: settings.STORAGE_ACCESS_KEY!,
          secretAccessKey: settings.STORAGE_SECRET_KEY!,
          bucket: settings.STORAGE_BUCKET,
          prefix: settings.STORAGE_PREFIX,
          region: settings.STORAGE_REGION,
          ...transferSettingsOf(settings),
          objectLock: settings.STORAGE_OBJECT_LOCK === 'off' ? undefined : settings.STORAGE_OBJECT_LOCK,
        }
      : undefined,
  };
}

/** AGE_RECIPIENTS and AGE_IDENTITY_FILE, paths absolute; a ConfigError when GPG_RECIPIENT is set too. */
function ageSettingsOf(settings: Settings, cwd: string): AgeSettings {
  const r = settings.AGE_RECIPIENTS;
  if (r && settings.GPG_RECIPIENT) {
    throw new ConfigError(['GPG_RECIPIENT and AGE_RECIPIENTS are both set: a backup is encrypted with gpg or with age, not both'], {
      hint: 'unset one of them (AGE_IDENTITY_FILE alone is fine: it only decrypts older age backups)',
    });
  }
  const path = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  return {
    recipients: r && 'file' in r ? { file: path(r.file) } : r,
    identityFile: settings.AGE_IDENTITY_FILE ? path(settings.AGE_IDENTITY_FILE) : undefined,
  };
}

/** The job of parsed settings; relative paths resolve against `cwd`. Throws a ConfigError without a database. */
export function resolveJob(settings: Settings, options: { cwd: string; name?: string }): JobConfig {
  const databaseUrl = settings.DATABASE_URL;
  if (!databaseUrl) throw new ConfigError(['DATABASE_URL: is required (e.g. postgresql://user:pass@host:5432/db)']);
  const database = databaseNameOf(databaseUrl);
  const storage = resolveStorage(settings, options);
  return {
    name: options.name ?? database,
    databaseUrl,
    database,
    filePrefix: filePrefixOf(database),
    backupDir: storage.backupDir,
    logFile: absolutePath(settings.LOG_FILE, options.cwd),
    compression: settings.BACKUP_COMPRESSION,
    gpgRecipient: settings.GPG_RECIPIENT,
    age: ageSettingsOf(settings, options.cwd),
    s3: storage.s3,
    extraTargets: storage.extraTargets,
    retention: {
      days: settings.RETENTION_DAYS,
      keepMin: settings.BACKUP_KEEP_MIN,
      keepDaily: settings.BACKUP_KEEP_DAILY,
      keepWeekly: settings.BACKUP_KEEP_WEEKLY,
      keepMonthly: settings.BACKUP_KEEP_MONTHLY,
    },
    ...jobSectionsOf(settings, options.cwd),
  };
}

/** The job without its buckets (--no-upload: the run and every step after it keep off them). */
export function offBucket(job: JobConfig): JobConfig {
  return { ...job, s3: undefined, extraTargets: [] };
}
