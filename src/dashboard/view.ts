/**
 * What the dashboard shows, as the JSON of `/api/v1/…` carries it (and `pgbak report --html`
 * embeds it). Plain data: times are ISO strings, sizes bytes, durations milliseconds.
 */

/** green: fresh and the last run ok; amber: older than 3/4 of BACKUP_RPO, or the last run not ok; red: no good backup within BACKUP_RPO. */
export type Freshness = 'green' | 'amber' | 'red';

export type BackupStateName = 'good' | 'incomplete' | 'corrupt' | 'foreign';
export type WhereName = 'local' | 'remote';

/** One row of the overview: a job (one database). */
export interface JobOverview {
  readonly job: string;
  readonly database: string;
  readonly ok: boolean;
  readonly freshness: Freshness;
  /** Why not ok, one line each. */
  readonly reasons: readonly string[];
  readonly warnings: readonly string[];
  readonly rpoMs: number;
  readonly newestGood: {
    readonly name: string;
    readonly time: string;
    readonly ageMs: number;
    readonly sizeBytes: number;
    readonly locations: readonly WhereName[];
  } | null;
  readonly lastRun: {
    readonly status: 'ok' | 'partial' | 'failed' | 'dry-run';
    readonly backup: string | null;
    readonly startedAt: string;
    readonly finishedAt: string;
    readonly durationMs: number;
    /** The one-line cause and the hint of a partial or failed run. */
    readonly error: { readonly code: string; readonly message: string; readonly hint: string | null } | null;
    readonly warnings: readonly string[];
    readonly host: string;
  } | null;
  /** The daemon's next scheduled run (null in a report file, on a monitoring host, or when the schedule never matches). */
  readonly nextRunAt: string | null;
  /** Null for a database found in storage on a monitoring host (no job configured here). */
  readonly schedule: { readonly cron: string; readonly timezone: string } | null;
  /** `/var/backups/db + s3://bucket/prefix` */
  readonly destination: string;
  readonly where: { readonly backupDir: string; readonly bucket: string | null };
  readonly encryption: { readonly enabled: boolean; readonly method: 'gpg' | 'age' | null; readonly recipient: string | null };
  readonly counts: { readonly good: number; readonly incomplete: number; readonly corrupt: number };
  readonly lastRestoreTest: { readonly backup: string; readonly at: string; readonly ok: boolean; readonly durationMs: number } | null;
  /** The WAL archive in the job's storage (point-in-time recovery); null when it has none. */
  readonly wal: WalOverview | null;
}

/** A chain `verify --wal` would pass (complete), or why not. */
export type WalChainState = 'complete' | 'gap' | 'conflict' | 'no-base-backup' | 'unreadable';

/** The WAL archive as the dashboard shows it: read at each cache refresh, the age set as of each answer. */
export interface WalOverview {
  /** `s3://bucket/prefix/wal/` */
  readonly location: string;
  readonly newestSegment: string | null;
  /** When the newest segment was stored (the storage's time). */
  readonly storedAt: string | null;
  readonly ageMs: number | null;
  /** WAL_RPO in ms. */
  readonly rpoMs: number;
  /** The newest segment's age against WAL_RPO: red past it (or no segment), amber past 3/4 of it. */
  readonly freshness: Freshness;
  /** The newest base backup (`pgbak basebackup`); time: when it ended (a restore can reach any time after). */
  readonly newestBase: { readonly name: string; readonly time: string; readonly sizeBytes: number } | null;
  /** The chain a restore replays, from the oldest base backup to the newest segment (the check of `pgbak verify --wal`). */
  readonly chain: {
    readonly state: WalChainState;
    /** The base backup the chain starts at. */
    readonly from: string | null;
    /** Segments archived along the chain. */
    readonly segments: number;
    readonly firstGap: string | null;
    readonly conflicts: readonly string[];
    /** Why not complete (null when complete). */
    readonly problem: string | null;
  };
}

/** `/api/v1/status` */
export interface StatusView {
  readonly ok: boolean;
  /** When the answer was made. */
  readonly generatedAt: string;
  /** When the cache behind it was last read from storage (null before the first read). */
  readonly refreshedAt: string | null;
  /** Why the last refresh could not read something (empty when all was read). */
  readonly problems: readonly string[];
  readonly jobs: readonly JobOverview[];
}

/** One backup of a job, as the backup list shows it. */
export interface BackupRow {
  readonly name: string;
  readonly time: string;
  readonly sizeBytes: number;
  /** From the manifest; null without one. */
  readonly durationMs: number | null;
  /** `zstd:3`, `gzip:9` (by pg_dump or stream); null without a manifest. */
  readonly compression: string | null;
  readonly encrypted: boolean;
  readonly state: BackupStateName;
  /** Where a copy is (local first). */
  readonly locations: readonly WhereName[];
  readonly problems: readonly string[];
  readonly verified: { readonly at: string; readonly ok: boolean; readonly kind: string; readonly durationMs: number } | null;
  /** The command that restores it (a good backup only), to copy. */
  readonly restoreCommand: string | null;
}

/** `/api/v1/backups?job=…` */
export interface BackupsPage {
  readonly job: string;
  /** Backups matching the filter. */
  readonly total: number;
  readonly page: number;
  readonly limit: number;
  readonly pages: number;
  readonly backups: readonly BackupRow[];
}

/** `/api/v1/series?job=…`: one point per good backup, oldest first. */
export interface SeriesView {
  readonly job: string;
  readonly points: readonly {
    readonly name: string;
    readonly time: string;
    readonly sizeBytes: number;
    readonly durationMs: number | null;
    /** Its size judged against the up-to-7 good backups before it (BACKUP_SIZE_TOLERANCE). */
    readonly anomalous: boolean;
    /** Why the size is anomalous (null when it is not). */
    readonly reason: string | null;
  }[];
}

/** `/api/v1/restore-tests?job=…`: newest first. */
export interface RestoreTestsView {
  readonly job: string;
  /** The guide's RTO target (4 h). */
  readonly rtoTargetMs: number;
  readonly tests: readonly { readonly backup: string; readonly at: string; readonly ok: boolean; readonly durationMs: number }[];
}

/** One notification channel's delivery for a job's last run. */
export interface DeliveryRow {
  readonly job: string;
  readonly channel: 'email' | 'webhook' | 'ping';
  /** When the run that sent it finished. */
  readonly at: string;
  readonly ok: boolean;
  readonly error: string | null;
}

/** `/api/v1/notifications` */
export interface NotificationsView {
  readonly deliveries: readonly DeliveryRow[];
}

/** `/api/v1/config`: every job's effective settings, secrets masked. */
export interface ConfigView {
  readonly jobs: readonly { readonly job: string; readonly settings: Readonly<Record<string, string>> }[];
}

/** The guide's restore-time objective. */
export const RTO_TARGET_MS = 4 * 3600_000;

/** Everything the dashboard knows of one job (the cache's unit, and what a report embeds). */
export interface JobSnapshot {
  readonly overview: JobOverview;
  /** Newest first. */
  readonly backups: readonly BackupRow[];
  readonly series: SeriesView;
  readonly restoreTests: RestoreTestsView;
  readonly deliveries: readonly DeliveryRow[];
  readonly settings: Readonly<Record<string, string>>;
}

/** What the page reads, whole: the daemon's cache, or the data block of `pgbak report --html`. */
export interface DashboardData {
  readonly refreshedAt: string | null;
  readonly problems: readonly string[];
  readonly jobs: readonly JobSnapshot[];
}
