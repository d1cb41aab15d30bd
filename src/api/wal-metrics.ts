import type { JobConfig } from '../config/job.js';
import { isAppError, messageOf } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import type { BackupMetrics } from '../metrics/metrics.js';
import { openStorage } from '../storage/job-storage.js';
import { walArchiveStatus, walMetricsOf } from './wal-status.js';

/**
 * How often the daemon rereads the WAL archive for its metrics. wal-push and basebackup run
 * outside the daemon (archive_command, cron), so only a periodic read sees them; a listing of
 * the archive per job each minute keeps `pgbak_wal_last_archived_timestamp_seconds` within a
 * minute of the truth, well inside the default WAL_RPO of 5 minutes.
 */
export const WAL_METRICS_REFRESH_MS = 60_000;

/**
 * The daemon's WAL series (pgbak_wal_*, pgbak_basebackup_last_success_timestamp_seconds) of every
 * job whose storage holds a WAL archive: read at start, every `intervalMs` and after each run of
 * a job. A job without a WAL archive has no WAL series; one that gets an archive later gets them
 * at the next refresh. Never throws: an unreadable archive keeps its last values and is logged.
 */
export class WalMetricsRefresher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private readonly failing = new Set<string>();

  constructor(
    private readonly jobs: readonly JobConfig[],
    private readonly metrics: BackupMetrics,
    private readonly logger: Logger,
  ) {}

  /** Read every job (or the one named) again, after any refresh under way. */
  refresh(jobName?: string): Promise<void> {
    this.running = this.running.then(() => this.read(jobName));
    return this.running;
  }

  start(intervalMs: number = WAL_METRICS_REFRESH_MS): void {
    this.timer = setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async read(jobName: string | undefined): Promise<void> {
    for (const job of this.jobs) {
      if (jobName !== undefined && job.name !== jobName) continue;
      try {
        await using storage = openStorage(job);
        const wal = await walArchiveStatus(storage, job.wal.rpoMs, new Date());
        if (wal) this.metrics.recordWal({ job: job.name, database: job.database }, walMetricsOf(wal));
        if (this.failing.delete(job.name)) this.logger.info('the WAL archive can be read again', { job: job.name });
      } catch (err) {
        if (isAppError(err) && err.code === 'interrupted') return;
        // Once per outage, not every minute.
        if (!this.failing.has(job.name))
          this.logger.warn(`cannot read the WAL archive for the metrics: ${messageOf(err)}`, { job: job.name });
        this.failing.add(job.name);
      }
    }
  }
}

/**
 * METRICS_TEXTFILE after `pgbak basebackup`: the job's WAL series as they are now, beside the
 * dump series already in the file. Never throws: a metrics file that cannot be written is a warning.
 */
export async function writeWalTextfile(job: JobConfig, logger: Pick<Logger, 'warn'>): Promise<void> {
  const path = job.metrics.textfile;
  if (!path) return;
  try {
    const { updateMetricsTextfile } = await import('../metrics/textfile.js');
    await using storage = openStorage(job);
    const wal = await walArchiveStatus(storage, job.wal.rpoMs, new Date());
    if (!wal) return;
    await updateMetricsTextfile(path, (m) => m.recordWal({ job: job.name, database: job.database }, walMetricsOf(wal)));
  } catch (err) {
    logger.warn('could not update METRICS_TEXTFILE with the WAL archive', { error: messageOf(err) });
  }
}
