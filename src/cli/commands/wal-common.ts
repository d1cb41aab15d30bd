import type { WalJob } from '../../api/wal-job.js';
import type { LineLogger } from '../../logging/logger.js';
import { flagLayer, stderrLogOptions, type CommonFlags } from '../context.js';
import { useRedactor } from '../shown.js';

export interface WalFlags extends CommonFlags {
  pgdata?: string;
}

/**
 * The WAL archive settings of the selected job (--job), or of the bare variables when there is no
 * DATABASE_URL (archive_command and restore_command need storage, not a database). Only the
 * configuration modules load here: wal-push runs once per WAL segment, so its start-up counts.
 */
export async function loadWalJob(flags: WalFlags): Promise<{ job: WalJob; logger: LineLogger }> {
  const layer = await flagLayer(flags.set);
  const [{ loadJobs, selectJobs }, { resolveStorage }, { walSettingsOf, notifySettingsOf }, { LineLogger }] = await Promise.all([
    import('../../config/config-file.js'),
    import('../../config/job.js'),
    import('../../config/job-sections.js'),
    import('../../logging/logger.js'),
  ]);
  const loaded = loadJobs({
    configPath: flags.config,
    flags: layer,
    ...(flags.envFile ? { envFile: flags.envFile } : {}),
    requireDatabaseUrl: false,
  });
  useRedactor(loaded.redactor);
  const logger = new LineLogger({
    level: loaded.global.BACKUP_LOG_LEVEL,
    ...stderrLogOptions(loaded.global.BACKUP_LOG_LEVEL),
    redactor: loaded.redactor,
  });
  for (const w of loaded.warnings) logger.warn(w);
  if (loaded.jobs.length > 0) return { job: selectJobs(loaded.jobs, { job: flags.job })[0]!, logger };
  const g = loaded.global;
  const job: WalJob = {
    ...resolveStorage(g, { cwd: process.cwd() }),
    wal: walSettingsOf(g),
    gpgRecipient: g.GPG_RECIPIENT,
    notify: notifySettingsOf(g),
  };
  return { job, logger };
}
