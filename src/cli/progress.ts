import cliProgress from 'cli-progress';
import type { BackupProgress } from '../api/backup.js';
import type { RestoreProgress } from '../api/restore-run.js';
import type { Logger, LogFields } from '../logging/logger.js';
import { formatBytes, formatDuration } from '../model/human-units.js';

export interface ProgressDisplay<P> {
  update(p: P): void;
  stop(): void;
}

/** How one kind of progress is shown: as a bar on a TTY, as a log line otherwise. */
interface ProgressSpec<P> {
  readonly logMessage: string;
  logFields(p: P): LogFields;
  readonly format: string;
  /** Bar position and length, and the named values the format shows. */
  bar(p: P): { value: number; total: number; payload: Record<string, string> };
}

/**
 * On a TTY: a live line on stderr. Otherwise (cron, systemd, pipes): a plain log line every
 * 30 s, no escape codes.
 */
function progressDisplay<P>(logger: Logger, spec: ProgressSpec<P>, isTTY: boolean): ProgressDisplay<P> {
  if (!isTTY) {
    let last = Date.now();
    return {
      update(p) {
        if (Date.now() - last < 30_000) return;
        last = Date.now();
        logger.info(spec.logMessage, spec.logFields(p));
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: spec.format, hideCursor: true, clearOnComplete: true, barsize: 24 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(p) {
      const { value, total, payload } = spec.bar(p);
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

/** Backup: bytes, rate, elapsed, % estimated from table sizes, the table being copied. */
export function createProgress(logger: Logger, isTTY = Boolean(process.stderr.isTTY)): ProgressDisplay<BackupProgress> {
  return progressDisplay<BackupProgress>(
    logger,
    {
      logMessage: 'backup progress',
      logFields: (p) => ({ bytes: p.bytes, percent: p.percent === undefined ? undefined : Math.round(p.percent), table: p.table }),
      format: '{percent} {bar} {bytes} at {rate}, {elapsed} {table}',
      bar: (p) => ({
        value: Math.round(p.percent ?? 0),
        total: 100,
        payload: {
          percent: p.percent === undefined ? '  ?%' : `${Math.round(p.percent).toString().padStart(3)}%`,
          bytes: formatBytes(p.bytes),
          rate: `${formatBytes(Math.round(p.elapsedMs > 0 ? (p.bytes / p.elapsedMs) * 1000 : 0))}/s`,
          elapsed: formatDuration(p.elapsedMs),
          table: p.table ?? '',
        },
      }),
    },
    isTTY,
  );
}

/** Restore: checking/downloading bytes, then objects restored out of the archive's table of contents. */
export function createRestoreProgress(logger: Logger, isTTY = Boolean(process.stderr.isTTY)): ProgressDisplay<RestoreProgress> {
  return progressDisplay<RestoreProgress>(
    logger,
    {
      logMessage: 'restore progress',
      logFields: (p) => ({ phase: p.phase, bytes: p.bytes, objects: p.objects, total: p.totalObjects }),
      format: '{phase} {bar} {count} {bytes} {elapsed}',
      bar: (p) => {
        const objectsPhase = p.phase === 'restore';
        const total = objectsPhase ? (p.totalObjects ?? 0) : p.totalBytes;
        return {
          value: objectsPhase ? Math.min(p.objects, total) : p.bytes,
          total,
          payload: {
            phase: { verify: 'checking ', download: 'spooling ', restore: 'restoring' }[p.phase],
            count: objectsPhase ? `${p.objects}/${p.totalObjects ?? '?'} objects` : '',
            bytes: p.bytes ? formatBytes(p.bytes) : '',
            elapsed: formatDuration(p.elapsedMs),
          },
        };
      },
    },
    isTTY,
  );
}
