/**
 * The typed sections of a resolved job and of the daemon as a whole, built from the parsed
 * settings: callers read `job.notify.email` or `job.health.rpoMs`, never a variable name.
 */
import { isAbsolute, resolve } from 'node:path';
import type { LogLevel } from '../logging/logger.js';
import { ConfigError } from '../errors/index.js';
import type { Compression } from './parsers.js';
import type { Settings } from './schema.js';

/** Where notifications go (the NOTIFY_* variables). */
export interface NotifySettings {
  /** NOTIFY_EMAIL; empty: no e-mail. */
  readonly email: readonly string[];
  /** NOTIFY_ON: e-mail on failure (and partial, and size anomaly) only, or after every run. */
  readonly on: 'failure' | 'always';
  /** NOTIFY_SMTP_URL; unset: the host's own MTA (smtp://localhost:25). */
  readonly smtpUrl?: string | undefined;
  /** NOTIFY_FROM. */
  readonly from: string;
  /** NOTIFY_WEBHOOK_URL: a JSON POST of each run result. */
  readonly webhookUrl?: string | undefined;
  /** NOTIFY_PING_URL: the dead-man switch (`/start`, success, `/fail`). */
  readonly pingUrl?: string | undefined;
}

/** The check after each backup (BACKUP_VERIFY, VERIFY_DATABASE_URL). */
export interface VerifySettings {
  /** BACKUP_VERIFY: nothing, or restore the new backup into a scratch database and compare. */
  readonly mode: 'none' | 'restore-test';
  /** VERIFY_DATABASE_URL: the server of restore tests; undefined: the backed-up server. */
  readonly databaseUrl: string | undefined;
}

/** When the daemon runs the job (BACKUP_SCHEDULE, BACKUP_TZ, BACKUP_RUN_ON_START). */
export interface ScheduleSettings {
  /** A cron expression of 5 or 6 fields, already checked. */
  readonly cron: string;
  /** IANA time zone of the cron expression, already checked. */
  readonly timezone: string;
  /** Run once when the daemon starts, before the first scheduled time. */
  readonly runOnStart: boolean;
}

/** Where the PostgreSQL client programs are found (PG_DUMP_PATH). */
export interface PgToolSettings {
  /** pg_dump binary or its directory (pg_restore is looked up beside it); undefined: PATH, then /usr/lib/postgresql/*\/bin. */
  readonly pgDumpPath: string | undefined;
}

/** Prometheus output of the job (METRICS_TEXTFILE). */
export interface MetricsSettings {
  /** node_exporter textfile written after each run (absolute); undefined: none. */
  readonly textfile: string | undefined;
}

/** What `status` and the size anomaly judge (BACKUP_RPO, BACKUP_SIZE_TOLERANCE). */
export interface HealthSettings {
  /** The newest good backup must be younger than this (ms). */
  readonly rpoMs: number;
  /** Allowed deviation of a backup's size from the median of recent ones (0.5 = 50%). */
  readonly sizeTolerance: number;
}

/** What a backup run does besides the dump (BACKUP_GLOBALS, BACKUP_ROW_COUNTS, BACKUP_PRUNE). */
export interface BackupSettings {
  /** Also store `pg_dumpall --globals-only` (roles, tablespaces). */
  readonly globals: boolean;
  /** Record exact per-table row counts, in the dump's snapshot, for restore tests. */
  readonly rowCounts: boolean;
  /** Prune old backups after each successful backup. */
  readonly prune: boolean;
  /** BACKUP_JOBS: 1 is one custom-format stream; 2 or more, pg_dump --format=directory --jobs=N (backup-directory.ts). */
  readonly jobs: number;
  /**
   * BACKUP_DATABASES / BACKUP_EXCLUDE_DATABASES: the job is a whole server (the databases are
   * discovered at each run; DATABASE_URL's database is only the connection for discovery and the
   * globals). Undefined: the one database of DATABASE_URL.
   */
  readonly databases?: DatabaseSelection | undefined;
}

/** Which databases of a server a whole-server job backs up (templates and databases that refuse connections never). */
export interface DatabaseSelection {
  /** `all`, or these names. */
  readonly include: 'all' | readonly string[];
  /** Left out, even when listed in include. */
  readonly exclude: readonly string[];
}

/** Point-in-time recovery: the WAL archive and base backups (WAL_COMPRESSION, WAL_RPO). */
export interface WalSettings {
  /** How WAL files and base backups are compressed (a stream stage, never pg_dump's). */
  readonly compression: Compression;
  /** status: the newest archived WAL file must be younger than this (ms). */
  readonly rpoMs: number;
  /** WAL_BASEBACKUP_COMPRESS_ON: who compresses a base backup (zstd, lz4) when the server can. */
  readonly baseCompressOn: 'server' | 'client';
}

/** Settings of the daemon as a whole, from `defaults:`, the environment and flags. */
export interface DaemonSettings {
  /** BACKUP_CONCURRENCY: jobs run at once by `--all` and the daemon. */
  readonly concurrency: number;
  /** BACKUP_RETRIES: retries of a run that failed for a transient cause. */
  readonly retries: number;
  /** BACKUP_STOP_TIMEOUT: on SIGTERM, how long a running backup may finish (ms). */
  readonly stopTimeoutMs: number;
  /** METRICS_ADDR: serve /metrics and /healthz at host:port; undefined: no server. */
  readonly metricsAddr: string | undefined;
  /** DASHBOARD_TOKEN: what the dashboard at METRICS_ADDR asks for; undefined: no login (loopback only). */
  readonly dashboardToken: string | undefined;
  /** LOG_FILE, absolute; undefined: no log file. */
  readonly logFile: string | undefined;
  /** BACKUP_LOG_LEVEL. */
  readonly logLevel: LogLevel;
}

/** The typed sections of one job. */
export interface JobSections {
  readonly verify: VerifySettings;
  readonly notify: NotifySettings;
  readonly schedule: ScheduleSettings;
  readonly pgTools: PgToolSettings;
  readonly metrics: MetricsSettings;
  readonly health: HealthSettings;
  readonly backup: BackupSettings;
  readonly wal: WalSettings;
}

/** `path` made absolute against `cwd`; empty: undefined. */
export function absolutePath(path: string | undefined, cwd: string): string | undefined {
  if (!path) return undefined;
  return isAbsolute(path) ? path : resolve(cwd, path);
}

/** The NOTIFY_* variables as {@link NotifySettings}. */
export function notifySettingsOf(
  settings: Pick<Settings, 'NOTIFY_EMAIL' | 'NOTIFY_ON' | 'NOTIFY_SMTP_URL' | 'NOTIFY_FROM' | 'NOTIFY_WEBHOOK_URL' | 'NOTIFY_PING_URL'>,
): NotifySettings {
  return {
    email: settings.NOTIFY_EMAIL,
    on: settings.NOTIFY_ON,
    smtpUrl: settings.NOTIFY_SMTP_URL,
    from: settings.NOTIFY_FROM,
    webhookUrl: settings.NOTIFY_WEBHOOK_URL,
    pingUrl: settings.NOTIFY_PING_URL,
  };
}

/** Every typed section of a job; relative paths resolve against `cwd`. */
export function jobSectionsOf(settings: Settings, cwd: string): JobSections {
  return {
    verify: { mode: settings.BACKUP_VERIFY, databaseUrl: settings.VERIFY_DATABASE_URL },
    notify: notifySettingsOf(settings),
    schedule: { cron: settings.BACKUP_SCHEDULE, timezone: settings.BACKUP_TZ, runOnStart: settings.BACKUP_RUN_ON_START },
    pgTools: { pgDumpPath: settings.PG_DUMP_PATH },
    metrics: { textfile: absolutePath(settings.METRICS_TEXTFILE, cwd) },
    health: { rpoMs: settings.BACKUP_RPO, sizeTolerance: settings.BACKUP_SIZE_TOLERANCE },
    backup: {
      globals: settings.BACKUP_GLOBALS,
      rowCounts: settings.BACKUP_ROW_COUNTS,
      prune: settings.BACKUP_PRUNE,
      jobs: settings.BACKUP_JOBS,
      ...databaseSelectionOf(settings),
    },
    wal: walSettingsOf(settings),
  };
}

/** BACKUP_DATABASES and BACKUP_EXCLUDE_DATABASES as `{ databases }`; `{}` when BACKUP_DATABASES is empty. */
function databaseSelectionOf(settings: Pick<Settings, 'BACKUP_DATABASES' | 'BACKUP_EXCLUDE_DATABASES'>): {
  databases?: DatabaseSelection;
} {
  const list = settings.BACKUP_DATABASES;
  if (list.length === 0 && settings.BACKUP_EXCLUDE_DATABASES.length > 0) {
    throw new ConfigError(
      ['BACKUP_EXCLUDE_DATABASES is set without BACKUP_DATABASES: it leaves out databases of a whole-server job only'],
      {
        hint: 'set BACKUP_DATABASES=all to back up every database but those, or unset BACKUP_EXCLUDE_DATABASES',
      },
    );
  }
  if (list.length === 0) return {};
  const include = list.length === 1 && list[0]!.toLowerCase() === 'all' ? 'all' : list;
  return { databases: { include, exclude: settings.BACKUP_EXCLUDE_DATABASES } };
}

/** The WAL_* variables as {@link WalSettings}. */
export function walSettingsOf(settings: Pick<Settings, 'WAL_COMPRESSION' | 'WAL_RPO' | 'WAL_BASEBACKUP_COMPRESS_ON'>): WalSettings {
  return { compression: settings.WAL_COMPRESSION, rpoMs: settings.WAL_RPO, baseCompressOn: settings.WAL_BASEBACKUP_COMPRESS_ON };
}

/** The daemon's settings; LOG_FILE resolves against `cwd`. */
export function daemonSettingsOf(settings: Settings, cwd: string): DaemonSettings {
  return {
    concurrency: settings.BACKUP_CONCURRENCY,
    retries: settings.BACKUP_RETRIES,
    stopTimeoutMs: settings.BACKUP_STOP_TIMEOUT,
    metricsAddr: settings.METRICS_ADDR,
    dashboardToken: settings.DASHBOARD_TOKEN,
    logFile: absolutePath(settings.LOG_FILE, cwd),
    logLevel: settings.BACKUP_LOG_LEVEL,
  };
}
