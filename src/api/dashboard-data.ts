import { ownBackups, type CatalogEntry } from '../catalog/catalog.js';
import { CatalogSource } from '../catalog/find-backup.js';
import { judgeSize, SIZE_HISTORY_WINDOW } from '../catalog/size-trend.js';
import type { JobConfig } from '../config/job.js';
import { formatCompression } from '../config/parsers.js';
import { parseSchedule } from '../config/schedule.js';
import type { BackupRow, DeliveryRow, JobOverview, JobSnapshot, RestoreTestsView, SeriesView } from '../dashboard/view.js';
import { RTO_TARGET_MS } from '../dashboard/view.js';
import { messageOf } from '../errors/error-message.js';
import type { Redactor } from '../logging/redact.js';
import { formatDuration } from '../model/human-units.js';
import { openStorage } from '../storage/job-storage.js';
import { walOverview } from './dashboard-wal.js';
import { baseRestoreTests } from './wal-status.js';
import { jobIdentity } from './identity.js';
import { destinationOf } from './report-run.js';
import { databaseStatus, jobTarget, type DatabaseStatus, type StatusTarget } from './status.js';

/**
 * What the dashboard shows of one job, read from storage as `pgbak status` and `pgbak list` read
 * it: the status (newest good backup, last-run record, restore test) and the job's own backups.
 */

/**
 * One database the dashboard shows: a configured job, or (on a monitoring host with storage
 * settings only) a database found in BACKUP_DIR or the bucket, without a job's configuration.
 */
export interface DashboardTarget {
  readonly status: StatusTarget;
  /** The configured job: schedule, encryption, notifications and settings come from it. */
  readonly job?: JobConfig | undefined;
}

/** The dashboard target of a configured job. */
export function jobDashboardTarget(job: JobConfig): DashboardTarget {
  return { status: jobTarget(job), job };
}

/** A shell word: as is when plain, else single-quoted. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_.:/@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `pgbak restore NAME --target <db>_restore --create` (with `--job` when there are several jobs). */
export function restoreCommand(name: string, job: { readonly name: string; readonly database: string }, severalJobs: boolean): string {
  const jobFlag = severalJobs ? ` --job ${shellWord(job.name)}` : '';
  return `pgbak restore ${shellWord(name)}${jobFlag} --target ${shellWord(`${job.database}_restore`)} --create`;
}

function row(e: CatalogEntry, job: { readonly name: string; readonly database: string }, severalJobs: boolean): BackupRow {
  const m = e.manifest;
  const locations = (['local', 'remote'] as const).filter((w) => {
    const c = e.locations[w];
    return c?.manifest !== undefined && c.artifact !== undefined;
  });
  const v = e.verification;
  return {
    name: e.name,
    time: e.time.toISOString(),
    sizeBytes: e.size,
    durationMs: m ? m.durationMs : null,
    compression: m ? `${formatCompression({ method: m.compression.method, level: m.compression.level })} (${m.compression.by})` : null,
    encrypted: e.encrypted,
    state: e.state,
    locations,
    problems: e.problems,
    verified: v ? { at: v.verifiedAt, ok: v.ok, kind: v.kind, durationMs: v.durationMs } : null,
    restoreCommand: e.state === 'good' ? restoreCommand(e.name, job, severalJobs) : null,
  };
}

/** One point per good backup, oldest first; each size judged against the up-to-7 good ones before it. */
function seriesOf(target: StatusTarget, good: readonly CatalogEntry[]): SeriesView {
  const oldestFirst = [...good].reverse();
  const points = oldestFirst.map((e, i) => {
    const before = oldestFirst.slice(Math.max(0, i - SIZE_HISTORY_WINDOW), i).map((x) => x.size);
    const j = judgeSize(e.size, before.reverse(), target.sizeTolerance);
    return {
      name: e.name,
      time: e.time.toISOString(),
      sizeBytes: e.size,
      durationMs: e.manifest?.durationMs ?? null,
      anomalous: j.anomalous,
      reason: j.anomalous ? j.reason : null,
    };
  });
  return { job: target.job, points };
}

function restoreTestsOf(target: StatusTarget, mine: readonly CatalogEntry[]): RestoreTestsView {
  const tests = mine
    .filter((e) => e.verification?.kind === 'restore-test')
    .map((e) => ({ backup: e.name, at: e.verification!.verifiedAt, ok: e.verification!.ok, durationMs: e.verification!.durationMs }))
    .sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  return { job: target.job, rtoTargetMs: RTO_TARGET_MS, tests };
}

/** The restore tests of base backups among the dumps', newest first. */
function withBaseTests(view: RestoreTestsView, base: readonly RestoreTestsView['tests'][number][]): RestoreTestsView {
  if (base.length === 0) return view;
  return { ...view, tests: [...view.tests, ...base].sort((a, b) => Date.parse(b.at) - Date.parse(a.at)) };
}

/** The deliveries of the last run's notifications: each configured channel, failed when the run's warnings say so. */
export function deliveriesOf(job: JobConfig, lastRun: DatabaseStatus['lastRun']): DeliveryRow[] {
  if (!lastRun || lastRun.status === 'dry-run') return [];
  const n = job.notify;
  const channels: DeliveryRow['channel'][] = [];
  const anomaly = lastRun.warnings.some((w) => w.startsWith('size anomaly'));
  if (n.email.length > 0 && (n.on === 'always' || lastRun.status !== 'ok' || anomaly)) channels.push('email');
  if (n.webhookUrl) channels.push('webhook');
  if (n.pingUrl) channels.push('ping');
  return channels.map((channel) => {
    const failed = lastRun.warnings.find((w) => w.startsWith(`${channel} notification not delivered`));
    return {
      job: job.name,
      channel,
      at: lastRun.finishedAt,
      ok: !failed,
      error: failed ? withoutUrlSecrets(failed.replace(/^[a-z]+ notification not delivered: /, ''), job) : null,
    };
  });
}

/** `https://hooks.slack.com/***`: the path of a webhook or ping URL is often its secret (Slack, healthchecks.io). */
function originOnly(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return `${new URL(url).origin}/***`;
  } catch {
    return '***';
  }
}

/** `text` with the webhook and ping URLs of the job cut to their origin (their paths are secrets). */
function withoutUrlSecrets(text: string, job: JobConfig): string {
  let out = text;
  for (const url of [job.notify.webhookUrl, job.notify.pingUrl]) if (url) out = out.split(url).join(originOnly(url)!);
  return out;
}

/** The job's effective settings by variable name, every value through the configuration's Redactor and secrets masked. */
export function effectiveSettings(job: JobConfig, redactor: Redactor): Record<string, string> {
  const s3 = job.s3;
  const raw: Record<string, string | number | boolean | undefined> = {
    DATABASE_URL: job.databaseUrl,
    BACKUP_DIR: job.backupDir,
    STORAGE_ENDPOINT: s3?.endpoint,
    STORAGE_BUCKET: s3?.bucket,
    STORAGE_PREFIX: s3?.prefix,
    STORAGE_REGION: s3?.region,
    STORAGE_ACCESS_KEY: s3?.accessKeyId,
    STORAGE_SECRET_KEY: s3 ? '***' : undefined,
    STORAGE_OBJECT_LOCK: s3?.objectLock,
    // Each further bucket target (pgbak.yaml's targets:, STORAGE_2_*), its secret key masked.
    ...Object.fromEntries(
      (job.extraTargets ?? []).map((t) => [
        `target ${t.name}`,
        `s3://${t.bucket}/${t.prefix} at ${t.endpoint} (region ${t.region}, access key ${t.accessKeyId}, secret key ***${t.objectLock ? `, Object Lock ${t.objectLock}` : ''})`,
      ]),
    ),
    GPG_RECIPIENT: job.gpgRecipient,
    BACKUP_COMPRESSION: formatCompression(job.compression),
    BACKUP_GLOBALS: job.backup.globals,
    BACKUP_ROW_COUNTS: job.backup.rowCounts,
    BACKUP_VERIFY: job.verify.mode,
    VERIFY_DATABASE_URL: job.verify.databaseUrl,
    RETENTION_DAYS: job.retention.days,
    BACKUP_KEEP_MIN: job.retention.keepMin,
    BACKUP_KEEP_DAILY: job.retention.keepDaily,
    BACKUP_KEEP_WEEKLY: job.retention.keepWeekly,
    BACKUP_KEEP_MONTHLY: job.retention.keepMonthly,
    BACKUP_PRUNE: job.backup.prune,
    BACKUP_SCHEDULE: job.schedule.cron,
    BACKUP_TZ: job.schedule.timezone,
    BACKUP_RUN_ON_START: job.schedule.runOnStart,
    BACKUP_RPO: formatDuration(job.health.rpoMs),
    BACKUP_SIZE_TOLERANCE: `${Math.round(job.health.sizeTolerance * 100)}%`,
    NOTIFY_EMAIL: job.notify.email.join(', '),
    NOTIFY_ON: job.notify.on,
    NOTIFY_SMTP_URL: job.notify.smtpUrl,
    NOTIFY_WEBHOOK_URL: originOnly(job.notify.webhookUrl),
    NOTIFY_PING_URL: originOnly(job.notify.pingUrl),
    METRICS_TEXTFILE: job.metrics.textfile,
    PG_DUMP_PATH: job.pgTools.pgDumpPath,
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined && v !== '') out[k] = redactor.redact(String(v));
  return out;
}

function nextRun(job: JobConfig, now: Date): string | null {
  try {
    return parseSchedule(job.schedule.cron, job.schedule.timezone).nextAfter(now)?.toISOString() ?? null;
  } catch {
    return null;
  }
}

/** Where a target's backups go, and whether they are encrypted (a found database: as its newest good backup is). */
function storageOverview(target: DashboardTarget, newest: CatalogEntry | undefined): Pick<JobOverview, 'where' | 'encryption'> {
  const { backupDir, s3 } = target.status.storage;
  return {
    where: { backupDir, bucket: s3 ? `s3://${s3.bucket}/${s3.prefix}` : null },
    encryption: target.job ? jobEncryption(target.job) : manifestEncryption(newest?.manifest?.encryption),
  };
}

/** How a job encrypts its backups: gpg to one recipient, age to its keys (or recipients file), or off. */
function jobEncryption(job: JobConfig): JobOverview['encryption'] {
  if (job.gpgRecipient !== undefined) return { enabled: true, method: 'gpg', recipient: job.gpgRecipient };
  const r = job.age.recipients;
  if (r === undefined) return { enabled: false, method: null, recipient: null };
  return { enabled: true, method: 'age', recipient: 'file' in r ? r.file : r.keys.join(', ') };
}

/** How a found database's newest good backup was encrypted (a monitoring host has no job settings). */
function manifestEncryption(e: NonNullable<CatalogEntry['manifest']>['encryption'] | undefined): JobOverview['encryption'] {
  if (!e) return { enabled: false, method: null, recipient: null };
  return e.method === 'age'
    ? { enabled: true, method: 'age', recipient: e.recipients.join(', ') }
    : { enabled: true, method: 'gpg', recipient: e.recipient };
}

function overviewOf(
  target: DashboardTarget,
  s: DatabaseStatus,
  newest: CatalogEntry | undefined,
  schedule: boolean,
  now: Date,
): JobOverview {
  const r = s.lastRun;
  const { job } = target;
  return {
    job: target.status.job,
    database: target.status.database,
    ok: s.ok,
    freshness: 'red', // set as of each answer (query.ts)
    reasons: s.reasons,
    warnings: s.warnings,
    rpoMs: s.rpoMs,
    newestGood: s.newestGood,
    lastRun: r ? { ...r, error: r.error ? { code: r.error.code, message: r.error.message, hint: r.error.hint ?? null } : null } : null,
    nextRunAt: schedule && job ? nextRun(job, now) : null,
    schedule: job ? { cron: job.schedule.cron, timezone: job.schedule.timezone } : null,
    destination: destinationOf(target.status.storage),
    ...storageOverview(target, newest),
    counts: s.backups,
    lastRestoreTest: s.lastRestoreTest,
    wal: null, // read by readJobSnapshot
  };
}

export interface SnapshotOptions {
  readonly redactor: Redactor;
  readonly severalJobs: boolean;
  /** Show the next scheduled run (the daemon), or not (a report). */
  readonly schedule: boolean;
  readonly now?: Date;
  readonly signal?: AbortSignal;
}

/** The settings a found database is read with: storage and judgement only, secrets masked. */
function storageSettings(target: StatusTarget, redactor: Redactor): Record<string, string> {
  const { backupDir, s3 } = target.storage;
  const raw: Record<string, string | undefined> = {
    BACKUP_DIR: backupDir,
    STORAGE_ENDPOINT: s3?.endpoint,
    STORAGE_BUCKET: s3?.bucket,
    STORAGE_PREFIX: s3?.prefix,
    STORAGE_ACCESS_KEY: s3?.accessKeyId,
    STORAGE_SECRET_KEY: s3 ? '***' : undefined,
    BACKUP_RPO: formatDuration(target.rpoMs),
    BACKUP_SIZE_TOLERANCE: `${Math.round(target.sizeTolerance * 100)}%`,
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined && v !== '') out[k] = redactor.redact(v);
  return out;
}

/** Read one target's snapshot from storage. Unreadable parts become the status's reasons; throws only when interrupted. */
export async function readJobSnapshot(target: DashboardTarget, options: SnapshotOptions): Promise<JobSnapshot> {
  const now = options.now ?? new Date();
  const { status: st, job } = target;
  await using storage = openStorage(st.storage, { signal: options.signal });
  const status = await databaseStatus(st, now, options.signal, storage);
  let mine: CatalogEntry[] = [];
  let listProblem: string | undefined;
  try {
    const source = new CatalogSource({ local: storage.local, remote: storage.remote });
    const entries = await source.list(st.filePrefix);
    const identity = await jobIdentity({ database: st.database, filePrefix: st.filePrefix }, { local: storage.local, askServer: false });
    mine = ownBackups(entries, identity).mine;
  } catch (err) {
    listProblem = `cannot list the backups: ${messageOf(err)}`;
  }
  const good = mine.filter((e) => e.state === 'good');
  const wal = status.wal ? await walOverview(storage, status.wal, options.signal) : null;
  // A broken chain fails the job here (pgbak status judges the WAL's age only: it does not list the chain).
  const walProblem = wal?.chain.state === 'complete' ? undefined : wal?.chain.problem;
  const problems = [...(listProblem ? [listProblem] : []), ...(walProblem ? [walProblem] : [])];
  const judged = { ...overviewOf(target, status, good[0], options.schedule, now), wal };
  const overview = problems.length > 0 ? { ...judged, ok: false, reasons: [...judged.reasons, ...problems] } : judged;
  const names = { name: st.job, database: st.database };
  // Everything shown passes the configuration's Redactor once more (records written by older versions, errors quoting URLs).
  return options.redactor.redactValue({
    overview,
    backups: mine.map((e) => row(e, names, options.severalJobs)),
    series: seriesOf(st, good),
    restoreTests: withBaseTests(restoreTestsOf(st, mine), status.wal ? await baseRestoreTests(storage, status.wal.systemIdentifier) : []),
    deliveries: job ? deliveriesOf(job, status.lastRun) : [],
    settings: job ? effectiveSettings(job, options.redactor) : storageSettings(st, options.redactor),
  });
}
