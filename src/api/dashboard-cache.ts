import type { JobConfig } from '../config/job.js';
import { dashboardHandler, refusedHandler, type RequestHandler } from '../dashboard/server.js';
import { DashboardAuth, isLoopbackHost } from '../dashboard/auth.js';
import type { DashboardData, JobSnapshot } from '../dashboard/view.js';
import { isAppError, messageOf } from '../errors/index.js';
import type { Logger } from '../logging/logger.js';
import { Redactor } from '../logging/redact.js';
import { parseListenAddress } from '../metrics/http-server.js';
import { jobDashboardTarget, readJobSnapshot, type DashboardTarget } from './dashboard-data.js';

/**
 * The daemon's dashboard data, kept in memory: read from storage at start, after each finished
 * run (that job only) and every `intervalMs` (every job, for what other hosts or commands
 * changed), so that the page and the API answer from memory however large the bucket is.
 */
export class DashboardCache {
  private snapshots: JobSnapshot[];
  private refreshedAt: string | null = null;
  private problems: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly redactor: Redactor;
  private targets: readonly DashboardTarget[];

  /**
   * `jobs`: the configured jobs. `discover` (a monitoring host): finds the databases again at each
   * full refresh, so a server that starts backing up into the bucket appears.
   */
  constructor(
    jobs: readonly JobConfig[],
    private readonly logger: Logger,
    private readonly options: { readonly schedule?: boolean; readonly discover?: () => Promise<DashboardTarget[]> } = {},
  ) {
    this.redactor = logger.redactor ?? new Redactor();
    this.snapshots = [];
    this.targets = jobs.map(jobDashboardTarget);
  }

  /** The data as last read. */
  get data(): DashboardData {
    return { refreshedAt: this.refreshedAt, problems: this.problems, jobs: this.snapshots };
  }

  /** Read every job (or the one named) again; never throws (a job that cannot be read keeps its last snapshot and adds a problem). */
  refresh(jobName?: string): Promise<void> {
    const previous = this.running ?? Promise.resolve();
    const next = previous.then(() => this.read(jobName));
    this.running = next;
    return next;
  }

  private async read(jobName: string | undefined): Promise<void> {
    const problems: string[] = jobName ? this.problems.filter((p) => !p.startsWith(`${jobName}: `)) : [];
    if (!jobName && this.options.discover) {
      try {
        this.targets = await this.options.discover();
      } catch (err) {
        problems.push(`cannot list the databases in storage: ${this.redactor.redact(messageOf(err))}`);
      }
    }
    const next = new Map(this.snapshots.map((s) => [s.overview.job, s]));
    const severalJobs = this.targets.length > 1;
    for (const target of this.targets) {
      const name = target.status.job;
      if (jobName && name !== jobName) continue;
      try {
        next.set(name, await readJobSnapshot(target, { redactor: this.redactor, severalJobs, schedule: this.options.schedule ?? true }));
      } catch (err) {
        if (isAppError(err) && err.code === 'interrupted') throw err;
        const problem = `${name}: cannot read its backups: ${this.redactor.redact(messageOf(err))}`;
        problems.push(problem);
        this.logger.warn(`dashboard: ${problem}`);
      }
    }
    this.snapshots = this.targets.map((t) => next.get(t.status.job)).filter((s) => s !== undefined);
    this.problems = problems;
    this.refreshedAt = new Date().toISOString();
  }

  /** Refresh every `intervalMs` until {@link stop}. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * How often the daemon rereads every job's backups for the dashboard (each job's own runs refresh
 * it at once; this catches what other hosts and commands changed). Reading 5 000 backups takes
 * seconds (bench/dashboard.ts), so not every minute.
 */
export const DASHBOARD_REFRESH_MS = 5 * 60_000;

/**
 * The dashboard's handler for the daemon's METRICS_ADDR: served with DASHBOARD_TOKEN, or without
 * one on a loopback address; refused (with an error logged, the metrics still served) on any
 * other address without a token.
 */
export function daemonDashboard(addr: string, token: string | undefined, cache: DashboardCache, logger: Logger): RequestHandler {
  const { host } = parseListenAddress(addr);
  if (!token && !isLoopbackHost(host)) {
    const reason = `METRICS_ADDR ${addr} is not a loopback address and DASHBOARD_TOKEN is not set`;
    logger.error(`dashboard not served: ${reason}`, {
      hint: 'set DASHBOARD_TOKEN, or bind METRICS_ADDR to 127.0.0.1 and reach it through an SSH tunnel (ssh -L 9187:127.0.0.1:9187 host)',
    });
    return refusedHandler(reason);
  }
  return dashboardHandler({ data: () => cache.data, auth: token ? new DashboardAuth(token) : undefined });
}
