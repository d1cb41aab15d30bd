import cliProgress from 'cli-progress';
import type { RestoreProgress } from '../api/restore-run.js';
import type { Logger } from '../logging/logger.js';
import { formatBytes, formatDuration } from '../logging/human-units.js';

export interface RestoreProgressDisplay {
  update(p: RestoreProgress): void;
  stop(): void;
}

/**
 * On a TTY: a live line on stderr — checking/downloading bytes, then objects restored out of
 * the archive's table of contents. Otherwise (cron, pipes): a log line every 30 s.
 */
export function createRestoreProgress(logger: Logger, isTTY = Boolean(process.stderr.isTTY)): RestoreProgressDisplay {
  if (!isTTY) {
    let last = Date.now();
    return {
      update(p) {
        if (Date.now() - last < 30_000) return;
        last = Date.now();
        logger.info('restore progress', { phase: p.phase, bytes: p.bytes, objects: p.objects, total: p.totalObjects });
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: '{phase} {bar} {count} {bytes} {elapsed}', hideCursor: true, clearOnComplete: true, barsize: 24 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(p) {
      const objectsPhase = p.phase === 'restore';
      const total = objectsPhase ? (p.totalObjects ?? 0) : p.totalBytes;
      const value = objectsPhase ? Math.min(p.objects, total) : p.bytes;
      const payload = {
        phase: { verify: 'checking ', download: 'spooling ', restore: 'restoring' }[p.phase],
        count: objectsPhase ? `${p.objects}/${p.totalObjects ?? '?'} objects` : '',
        bytes: p.bytes ? formatBytes(p.bytes) : '',
        elapsed: formatDuration(p.elapsedMs),
      };
      if (!started) {
        bar.start(Math.max(total, 1), value, payload);
        started = true;
      }
      bar.setTotal(Math.max(total, 1));
      bar.update(value, payload);
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
