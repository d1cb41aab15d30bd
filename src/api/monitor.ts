import type { Settings } from '../config/schema.js';
import { statusView } from '../dashboard/query.js';
import type { Logger } from '../logging/logger.js';
import { startMetricsServer } from '../metrics/http-server.js';
import { BackupMetrics } from '../metrics/metrics.js';
import { installSignalHandlers, type SignalSource } from '../scheduler/daemon.js';
import { DASHBOARD_REFRESH_MS, DashboardCache, daemonDashboard } from './dashboard-cache.js';
import { discoverTargets } from './status.js';

/** Options of {@link runMonitor}. */
export interface RunMonitorOptions {
  readonly logger: Logger;
  /** Where relative paths (BACKUP_DIR) resolve. */
  readonly cwd: string;
  /** METRICS_ADDR: where the dashboard, /healthz and /readyz are served. */
  readonly metricsAddr: string;
  readonly dashboardToken?: string | undefined;
  /** How often storage is read again, new databases included (default 5 min). */
  readonly refreshMs?: number | undefined;
  readonly signals?: SignalSource | undefined;
}

/**
 * `pgbak daemon` on a monitoring host (storage settings, no database): no backups run; the
 * dashboard shows every database found in BACKUP_DIR and the bucket prefix (as `pgbak status`
 * finds them: one per file prefix), read again every `refreshMs`. `/readyz` is ok when every one
 * is fresh and its last run succeeded. Returns after SIGTERM/SIGINT.
 */
export async function runMonitor(settings: Settings, options: RunMonitorOptions): Promise<void> {
  const { logger } = options;
  const discover = async () => (await discoverTargets(settings, { cwd: options.cwd })).map((status) => ({ status }));
  const cache = new DashboardCache([], logger, { schedule: false, discover });
  await cache.refresh();
  const server = await startMetricsServer(options.metricsAddr, new BackupMetrics(), {
    live: () => ({ ok: true, detail: { mode: 'monitor', databases: cache.data.jobs.map((j) => j.overview.database) } }),
    ready: () => {
      const view = statusView(cache.data);
      return { ok: view.ok, detail: view.jobs.map((j) => ({ job: j.job, database: j.database, ok: j.ok, problems: j.reasons })) };
    },
    extra: daemonDashboard(options.metricsAddr, options.dashboardToken, cache, logger),
  });
  cache.start(options.refreshMs ?? DASHBOARD_REFRESH_MS);
  logger.info(`monitoring ${cache.data.jobs.length} database(s) found in storage (no job configured here): dashboard at ${server.url}/`, {
    readyz: `${server.url}/readyz`,
  });
  try {
    await new Promise<void>((resolve) => {
      const remove = installSignalHandlers(
        {
          stop: (reason) => {
            logger.info(`monitor stopped (${reason})`);
            remove();
            resolve();
          },
        },
        options.signals ? { target: options.signals } : {},
      );
    });
  } finally {
    cache.stop();
    await server.close().catch(() => undefined);
  }
}
