import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { JobConfig } from '../config/job.js';
import { reportHtml } from '../dashboard/assets.js';
import { statusView } from '../dashboard/query.js';
import type { DashboardData, JobSnapshot } from '../dashboard/view.js';
import { AppError, ExitCode, errnoCode } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { Redactor } from '../logging/redact.js';
import { jobDashboardTarget, readJobSnapshot } from './dashboard-data.js';
import { expandServerJobs } from './server-jobs.js';

/** What {@link writeHtmlReport} wrote. */
export interface HtmlReportResult {
  readonly file: string;
  readonly jobs: number;
  readonly backups: number;
  readonly bytes: number;
}

/**
 * `pgbak report --html FILE`: the daemon's dashboard as one self-contained HTML file (script and
 * style sheet inlined, the data embedded as JSON), for hosts that run pgbak from cron or systemd.
 * Read from storage as `pgbak status` reads it; written to a temporary file, then renamed.
 */
export async function writeHtmlReport(options: {
  jobs: readonly JobConfig[];
  file: string;
  logger: Logger;
  now?: Date;
  signal?: AbortSignal;
}): Promise<HtmlReportResult> {
  const now = options.now ?? new Date();
  const redactor = options.logger.redactor ?? new Redactor();
  const jobs: JobSnapshot[] = [];
  // Whole-server jobs (BACKUP_DATABASES): each database, as a one-database job.
  const units = options.jobs.some((j) => j.backup.databases)
    ? await expandServerJobs(options.jobs, { discover: true, logger: options.logger })
    : options.jobs;
  for (const job of units) {
    jobs.push(
      await readJobSnapshot(jobDashboardTarget(job), {
        redactor,
        severalJobs: units.length > 1,
        schedule: false,
        now,
        ...(options.signal ? { signal: options.signal } : {}),
      }),
    );
  }
  const data: DashboardData = { refreshedAt: now.toISOString(), problems: [], jobs };
  const html = reportHtml({ status: statusView(data, now), data });
  const temp = join(dirname(options.file), `.${basename(options.file)}.${process.pid}.tmp`);
  try {
    await writeFile(temp, html, { mode: 0o644 });
    await rename(temp, options.file);
  } catch (err) {
    await rm(temp, { force: true });
    throw new AppError('report-write', `cannot write ${options.file}: ${errnoCode(err) ?? (err as Error).message}`, {
      exitCode: ExitCode.failure,
      cause: err,
      hint: 'check that the directory exists and is writable',
    });
  }
  return { file: options.file, jobs: jobs.length, backups: jobs.reduce((n, j) => n + j.backups.length, 0), bytes: Buffer.byteLength(html) };
}
