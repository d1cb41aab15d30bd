import { writeSync } from 'node:fs';
import type { BackupProgress } from '../api/backup.js';
import type { RestoreProgress } from '../api/restore-run.js';
import { LineLogger, type Logger, type LogFields } from '../logging/logger.js';
import { formatBytes, formatDuration } from '../model/human-units.js';

export interface ProgressDisplay<P> {
  update(p: P): void;
  stop(): void;
}

/** How one kind of progress is shown: as a bar on a TTY, as a log line otherwise. */
interface ProgressSpec<P> {
  readonly logMessage: string;
  logFields(p: P): LogFields;
  /** The bar's fill (0 … 1) and the text around it. */
  line(p: P): { fraction: number; before: string; after: string };
}

const BAR_WIDTH = 24;
const REDRAW_MS = 100;

/** `███░░░…`: full and light-shade blocks. */
function barOf(fraction: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * BAR_WIDTH);
  return '\u2588'.repeat(filled) + '\u2591'.repeat(BAR_WIDTH - filled);
}

/** The one live line at the bottom of the terminal (at most one per process). */
let active: LiveLine | undefined;

/**
 * Take the live line off the terminal for good (before an error is rendered, before the process
 * exits): nothing is drawn after it.
 */
export function clearLiveLine(): void {
  active?.stop();
}

/**
 * A line on stderr that is rewritten in place: `\r`, the text cut to the terminal's width (a
 * wrapped line could not be erased), erase to the end of the line. Log lines go above it: the
 * logger's hooks clear it before each line and draw it again after.
 */
class LiveLine {
  private text = '';
  private visible = false;
  private stopped = false;
  private lastDraw = 0;

  constructor(
    private readonly columns: () => number,
    private readonly write: (s: string) => void = (s) => writeSync(2, s),
  ) {}

  show(text: string, force = false): void {
    if (this.stopped) return;
    this.text = text;
    const now = Date.now();
    if (!force && this.visible && now - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = now;
    this.draw();
  }

  private draw(): void {
    const width = Math.max(10, this.columns() - 1);
    const chars = Array.from(this.text);
    const cut = chars.length > width ? chars.slice(0, width - 1).join('') + '\u2026' : this.text;
    this.write(`\r${cut}\x1b[K`);
    this.visible = true;
  }

  clear(): void {
    if (!this.visible) return;
    this.write('\r\x1b[K');
    this.visible = false;
  }

  redraw(): void {
    if (!this.stopped && this.text !== '') this.draw();
  }

  stop(): void {
    this.clear();
    this.stopped = true;
  }
}

/**
 * On a TTY: a live line on stderr, with log lines written above it. Otherwise (cron, systemd,
 * pipes): a plain log line every 30 s, no escape codes.
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
  let line: LiveLine | undefined;
  const stop = () => {
    if (!line) return;
    line.stop();
    if (active === line) active = undefined;
    if (logger instanceof LineLogger) logger.setStderrHooks(undefined);
    line = undefined;
  };
  let stopped = false;
  return {
    update(p) {
      if (stopped) return;
      if (!line) {
        active?.stop();
        const created = new LiveLine(() => process.stderr.columns || 80);
        line = created;
        active = created;
        if (logger instanceof LineLogger) logger.setStderrHooks({ before: () => created.clear(), after: () => created.redraw() });
      }
      const { fraction, before, after } = spec.line(p);
      line.show(`${before} ${barOf(fraction)} ${after}`.trimEnd());
    },
    stop() {
      stopped = true;
      stop();
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
      line: (p) => {
        const rate = p.elapsedMs > 0 ? (p.bytes / p.elapsedMs) * 1000 : 0;
        const percent = p.percent === undefined ? undefined : Math.min(100, Math.max(0, p.percent));
        // The estimate comes from table sizes on disk: say how long is left only once it means something.
        const eta = percent !== undefined && percent >= 1 && percent <= 98 && p.elapsedMs >= 2000;
        return {
          fraction: (percent ?? 0) / 100,
          before: percent === undefined ? '  ?%' : `${Math.round(percent).toString().padStart(3)}%`,
          after: [
            `${formatBytes(p.bytes)} at ${formatBytes(Math.round(rate))}/s, ${formatDuration(p.elapsedMs)}`,
            eta ? `, ETA ${formatDuration((p.elapsedMs * (100 - percent)) / percent)}` : '',
            p.table ? ` ${p.table}` : '',
          ].join(''),
        };
      },
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
      line: (p) => {
        const objectsPhase = p.phase === 'restore';
        const total = objectsPhase ? (p.totalObjects ?? 0) : p.totalBytes;
        const value = objectsPhase ? Math.min(p.objects, total) : p.bytes;
        return {
          fraction: total > 0 ? value / total : 0,
          before: { verify: 'checking ', download: 'spooling ', restore: 'restoring' }[p.phase],
          after: [
            objectsPhase ? `${p.objects}/${p.totalObjects ?? '?'} objects` : '',
            p.bytes ? formatBytes(p.bytes) : '',
            formatDuration(p.elapsedMs),
          ]
            .filter((x) => x !== '')
            .join(' '),
        };
      },
    },
    isTTY,
  );
}
