import { listBackups } from '../catalog/catalog.js';
import { messageOf } from '../errors/index.js';
import { formatDuration } from '../model/human-units.js';
import { remoteTargetName, type JobStorage } from '../storage/job-storage.js';

/**
 * With further bucket targets (STORAGE_2_*): is each bucket target current, i.e. does it hold a
 * good backup of the database younger than BACKUP_RPO? Returns the reason status gives when one
 * is not ("only 1 of 2 targets is current: …"), else undefined. The first bucket is judged from
 * the catalog status already read (`primaryNewest`: its newest good backup's time, if any).
 */
export async function targetCurrency(o: {
  storage: JobStorage;
  filePrefix: string;
  database: string;
  rpoMs: number;
  now: Date;
  /** The time of the newest good backup in the first bucket, or undefined when it has none. */
  primaryNewest: Date | undefined;
}): Promise<string | undefined> {
  const extra = o.storage.extra ?? [];
  if (extra.length === 0) return undefined;
  const rpo = formatDuration(o.rpoMs);
  const stale: string[] = [];
  let total = 0;
  const judge = (name: string, newest: Date | undefined) => {
    total++;
    if (!newest) stale.push(`${name} has no good backup`);
    else if (o.now.getTime() - newest.getTime() >= o.rpoMs)
      stale.push(`${name}'s newest good backup is ${formatDuration(o.now.getTime() - newest.getTime())} old (BACKUP_RPO ${rpo})`);
  };
  if (o.storage.remote) judge(remoteTargetName(o.storage), o.primaryNewest);
  for (const t of extra) {
    try {
      const entries = await listBackups({ remote: t.backend, prefix: o.filePrefix });
      judge(t.name, entries.find((e) => e.state === 'good' && e.database === o.database)?.time);
    } catch (err) {
      total++;
      stale.push(`${t.name} cannot be read (${messageOf(err)})`);
    }
  }
  if (stale.length === 0) return undefined;
  return `only ${total - stale.length} of ${total} targets is current: ${stale.join('; ')}; \`pgbak copy --missing --to TARGET\` copies what a target lacks`;
}
