import cliProgress from 'cli-progress';
import type { BackupProgress } from '../api/backup.js';
import type { Logger } from '../logging/logger.js';
import { formatBytes, formatDuration } from '../logging/human-units.js';

export interface ProgressDisplay {
  update(p: BackupProgress): void;
  clear(): void;
  stop(): void;
}

/**
 * On a TTY: a live line on stderr (bytes, rate, elapsed, % estimated from table sizes).
 * Otherwise (cron, systemd): a plain log line every 30 s, no escape codes.
 */
export function createProgress(logger: Logger, isTTY = Boolean(process.stderr.isTTY)): ProgressDisplay {
  if (!isTTY) {
    let last = Date.now();
    return {
      update(p) {
        if (Date.now() - last < 30_000) return;
        last = Date.now();
        logger.info('backup progress', { bytes: p.bytes, percent: p.percent === undefined ? undefined : Math.round(p.percent), table: p.table });
      },
      clear() {},
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: '{percent} {bar} {bytes} at {rate}, {elapsed} {table}',
      hideCursor: true,
      clearOnComplete: true,
      barsize: 24,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(p) {
      const payload = {
        percent: p.percent === undefined ? '  ?%' : `${Math.round(p.percent).toString().padStart(3)}%`,
        bytes: formatBytes(p.bytes),
        rate: `${formatBytes(p.elapsedMs > 0 ? (p.bytes / p.elapsedMs) * 1000 : 0)}/s`,
        elapsed: formatDuration(p.elapsedMs),
        table: p.table ?? '',
      };
      if (!started) {
        bar.start(100, 0, payload);
        started = true;
      }
      bar.update(Math.round(p.percent ?? 0), payload);
    },
    clear() {
      if (started) process.stderr.write('\r\x1b[K');
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
