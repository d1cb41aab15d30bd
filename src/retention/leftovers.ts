import { parseKey } from '../catalog/backup-name.js';
import type { Logger } from '../logging/logger.js';
import { formatBytes } from '../model/human-units.js';
import { messageOf } from '../errors/index.js';
import type { StaleTemp } from '../storage/stale-temps.js';
import type { StaleUpload, StorageBackend } from '../storage/storage-backend.js';

/**
 * An open multipart upload is taken for a killed run's only after a day: no backup takes that
 * long to upload (10 000 parts of 64 MiB at 10 MiB/s is 18 h), and the bucket's own lifecycle
 * rule (`pgbak init --lifecycle`) uses the same day.
 */
const STALE_UPLOAD_AGE_MS = 24 * 60 * 60 * 1000;

/** What a killed run (SIGKILL, OOM, power loss) left that nothing else would remove. */
export interface Leftovers {
  /** Temp files in BACKUP_DIR whose writer is gone (see storage/stale-temps.ts). */
  readonly tempFiles: readonly StaleTemp[];
  /** Multipart uploads of this job's backup names older than a day, or of a run known to be over, aborted. */
  readonly uploads: readonly StaleUpload[];
}

/**
 * Remove the leftovers of killed runs (or, dry, find them): temp files anywhere in BACKUP_DIR
 * whose process is gone, and multipart uploads under the bucket prefix whose key is one of this
 * job's backup names (`<filePrefix>_YYYYMMDD_HHMMSS.*`) and that are older than a day. A failed
 * listing is logged and skipped (a server without ListMultipartUploads must not fail prune); a
 * failed removal is added to `errors`.
 */
export async function removeLeftovers(o: {
  filePrefix: string;
  local: StorageBackend;
  remote: StorageBackend | undefined;
  now: Date;
  dryRun: boolean;
  log: Logger;
  errors: string[];
  /**
   * Backup names whose run is known to be over (its manifest exists somewhere, or its process is
   * gone from this host): their open uploads are leftovers whatever their age, e.g. an upload
   * dropped while S3 was frozen, whose abort met a server that did not answer.
   */
  finished?: ReadonlySet<string>;
}): Promise<Leftovers> {
  const verb = o.dryRun ? 'would remove' : 'removed';
  let tempFiles: StaleTemp[] = [];
  const local = o.local;
  if (local.removeStaleTemps) {
    try {
      tempFiles = await local.removeStaleTemps({ now: o.now, dryRun: o.dryRun });
    } catch (err) {
      const message = `cannot remove the temp files of killed runs in ${o.local.location}: ${messageOf(err)}`;
      o.errors.push(message);
      o.log.error(message);
    }
    for (const t of tempFiles)
      o.log.info(`${verb} ${t.path} (${formatBytes(t.size)}): the temp file of a killed run (pid ${t.pid} is gone)`);
  }
  let uploads: StaleUpload[] = [];
  const remote = o.remote;
  if (remote?.abortStaleUploads) {
    const staleBefore = o.now.getTime() - STALE_UPLOAD_AGE_MS;
    const select = (u: StaleUpload) => {
      const parsed = u.key.includes('/') ? undefined : parseKey(u.key);
      if (parsed?.prefix !== o.filePrefix) return false;
      return u.initiated.getTime() < staleBefore || o.finished?.has(parsed.base) === true;
    };
    try {
      const r = await remote.abortStaleUploads({ select, dryRun: o.dryRun });
      uploads = r.aborted;
      for (const e of r.errors) o.log.error(e);
      o.errors.push(...r.errors);
    } catch (err) {
      o.log.warn(
        "cannot list the bucket's multipart uploads; stale ones stay until the lifecycle rule (pgbak init --lifecycle) removes them",
        { error: messageOf(err) },
      );
    }
    for (const u of uploads) {
      o.log.info(
        `${o.dryRun ? 'would abort' : 'aborted'} the multipart upload of ${remote.urlOf(u.key)}, started ${u.initiated.toISOString()} by a run that ended without completing it`,
      );
    }
  }
  return { tempFiles, uploads };
}
