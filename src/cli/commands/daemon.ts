import { isAbsolute, resolve } from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import { ExitCode } from '../../errors/index.js';
import { LineLogger } from '../../logging/logger.js';
import { flagLayer, loadContext, type CommonFlags } from '../context.js';
import { useRedactor } from '../shown.js';
import { addCommonOptions, addExamples } from '../options.js';
import type { CommandOutcome, OutcomeSlot } from '../outcome.js';

/** `pgbak daemon`: run every job (or `--job`) on its schedule until SIGTERM/SIGINT. */
export function registerDaemon(program: Command, slot: OutcomeSlot): void {
  const cmd = program
    .command('daemon')
    .description(
      'run the backups on their schedules (BACKUP_SCHEDULE, BACKUP_TZ) until SIGTERM/SIGINT; serves /metrics, /healthz (alive), /readyz (backups fresh) and the read-only dashboard (/, DASHBOARD_TOKEN) at METRICS_ADDR; Ctrl-C = SIGTERM; SIGHUP reopens LOG_FILE',
    );
  // Every job of the config file unless --job names one: no --all.
  addCommonOptions(cmd, { withAll: false }).action(async (flags: CommonFlags) => {
    slot.outcome = await runDaemonCommand(flags);
  });
  addExamples(cmd, [
    ['pgbak daemon --config pgbak.yaml', 'every job of the config file on its schedule'],
    ['pgbak daemon --job shop', 'one job only'],
  ]);
}

/** Parse, run the daemon until it stops, and say how it stopped. */
async function runDaemonCommand(flags: CommonFlags): Promise<CommandOutcome> {
  if (flags.job === undefined) {
    const monitored = await runMonitorIfNoJob(flags);
    if (monitored) return monitored;
  }
  const { abandonedError, runDaemon } = await import('../../api/daemon.js');
  const ctx = await loadContext(flags, { openLogFile: false, allByDefault: flags.job === undefined });
  const { global, jobs } = ctx;
  const logFile = global.LOG_FILE ? (isAbsolute(global.LOG_FILE) ? global.LOG_FILE : resolve(global.LOG_FILE)) : undefined;
  const logger = new LineLogger({ level: global.BACKUP_LOG_LEVEL, file: logFile, redactor: ctx.logger.redactor });
  try {
    const stopped = await runDaemon(jobs, {
      logger,
      metricsAddr: global.METRICS_ADDR,
      dashboardToken: global.DASHBOARD_TOKEN,
      limits: { stopTimeoutMs: global.BACKUP_STOP_TIMEOUT, concurrency: global.BACKUP_CONCURRENCY, retries: global.BACKUP_RETRIES },
      reopenLogs: () => logger.reopen(),
    });
    if (stopped.abandoned.length > 0) return { exitCode: ExitCode.failure, errors: [abandonedError(stopped)] };
    return { exitCode: ExitCode.ok, errors: [] };
  } finally {
    logger.close();
  }
}

/**
 * A monitoring host: no job (no DATABASE_URL, no config file) but METRICS_ADDR — serve the
 * dashboard of every database found in storage instead of failing. Undefined when there are jobs
 * (or no METRICS_ADDR: then the usual "DATABASE_URL is required" error follows).
 */
async function runMonitorIfNoJob(flags: CommonFlags): Promise<CommandOutcome | undefined> {
  const { loadJobs } = await import('../../config/config-file.js');
  const loaded = loadJobs({
    configPath: flags.config,
    flags: await flagLayer(flags.set),
    ...(flags.envFile ? { envFile: flags.envFile } : {}),
    requireDatabaseUrl: false,
  });
  const { global } = loaded;
  if (loaded.jobs.length > 0 || !global.METRICS_ADDR) return undefined;
  useRedactor(loaded.redactor);
  const { runMonitor } = await import('../../api/monitor.js');
  const logFile = global.LOG_FILE ? (isAbsolute(global.LOG_FILE) ? global.LOG_FILE : resolve(global.LOG_FILE)) : undefined;
  const logger = new LineLogger({ level: global.BACKUP_LOG_LEVEL, file: logFile, redactor: loaded.redactor });
  try {
    for (const w of loaded.warnings) logger.warn(w);
    await runMonitor(global, { logger, cwd: process.cwd(), metricsAddr: global.METRICS_ADDR, dashboardToken: global.DASHBOARD_TOKEN });
    return { exitCode: ExitCode.ok, errors: [] };
  } finally {
    logger.close();
  }
}
