import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { Redactor } from './redact.js';
import { fsError } from '../errors/index.js';

/** Log levels, from the most verbose. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** `key=value` fields of a log line. */
export type LogFields = Record<string, unknown>;

/** Leveled logging; every line passes through {@link Logger.redactor}. */
export interface Logger {
  /**
   * Masks secrets in every line; shared by children; pgbak uses it for the other output of the same
   * run (notifications). A host application's own logger may leave it out: pgbak then masks URL
   * credentials only, so give it `loadJobs()`'s `redactor` to mask the configured secrets as well.
   */
  readonly redactor?: Redactor | undefined;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(bindings: LogFields): Logger;
}

/** A logger that drops everything: for library callers that do not care. Its redactor masks by pattern only. */
export const silentLogger: Logger = {
  redactor: new Redactor(),
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/** Where and how a {@link LineLogger} writes. */
export interface LogSinkOptions {
  /** The least level written (to LOG_FILE, and to stderr unless {@link stderrLevel} says otherwise; default info). */
  level?: LogLevel;
  /** The least level written to stderr (default: {@link level}); a terminal shows warnings only, LOG_FILE keeps info. */
  stderrLevel?: LogLevel;
  /** Append to this file (directory created, mode 0600). */
  file?: string | undefined;
  /** Write to stderr (default true). */
  stderr?: boolean;
  /** Rewrites a line for stderr only (colour on a terminal); LOG_FILE gets the plain line. */
  decorateStderr?: (level: LogLevel, line: string) => string;
  /**
   * Hold ERROR lines back from stderr until {@link LineLogger.releaseHeldErrors}: on a terminal
   * a failure is shown once, as the command's rendered `pgbak: error:` line, and only the error
   * lines it does not cover are shown after all. LOG_FILE gets every line at once.
   */
  holdErrors?: boolean;
  /** Masks secrets in every line (default: URL credentials only); loadJobs returns the configuration's. */
  redactor?: Redactor;
}

function formatValue(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === 'string') return /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return JSON.stringify(v);
}

/**
 * Writes readable lines (`2026-11-28T17:00:00.000Z INFO  message key=value`) synchronously to
 * stderr and to LOG_FILE. Synchronous writes: a backup logs a handful of lines, and a line that
 * is lost because the process exited early is worse than a microsecond spent writing it.
 * Every line passes through the redactor, which masks URL credentials and the configuration's secrets.
 */
export class LineLogger implements Logger {
  readonly redactor: Redactor;
  private fd: number | undefined;
  /** A write to LOG_FILE failed (a full disk …) and stderr was told once. */
  private fileFailed = false;
  private readonly level: number;
  private readonly stderrLevel: number;
  /** Hooks set while something (a progress bar) owns the terminal's last line. */
  private hooks: { before?: (() => void) | undefined; after?: (() => void) | undefined } = {};
  /** ERROR lines held back from stderr (holdErrors), with the error text they are about. */
  private held: { line: string; about: string[] }[] = [];

  constructor(
    private readonly options: LogSinkOptions = {},
    private readonly bindings: LogFields = {},
    private readonly root?: LineLogger,
  ) {
    this.level = LEVELS[options.level ?? 'info'];
    this.stderrLevel = LEVELS[options.stderrLevel ?? options.level ?? 'info'];
    this.redactor = root?.redactor ?? options.redactor ?? new Redactor();
    if (!root && options.file) this.open();
  }

  private open(): void {
    const file = this.options.file;
    if (!file) return;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      this.fd = openSync(file, 'a', 0o600);
    } catch (err) {
      throw fsError(err, 'open log file', file, 'set LOG_FILE to a writable path');
    }
  }

  /** Reopen LOG_FILE (after logrotate moved it; called on SIGHUP). */
  reopen(): void {
    const target = this.root ?? this;
    if (target.fd !== undefined) closeSync(target.fd);
    target.fd = undefined;
    target.open();
  }

  close(): void {
    const target = this.root ?? this;
    if (target.fd !== undefined) closeSync(target.fd);
    target.fd = undefined;
  }

  /**
   * Run `before` ahead of every stderr line and `after` behind it (a progress bar clears its line
   * and redraws itself), until called again with undefined. Shared by every child logger.
   */
  setStderrHooks(hooks: { before?: () => void; after?: () => void } | undefined): void {
    (this.root ?? this).hooks = hooks ?? {};
  }

  /** Write a raw line to stderr between the hooks (the progress bar stays below it). */
  private toStderr(text: string): void {
    const root = this.root ?? this;
    root.hooks.before?.();
    writeSync(2, text);
    root.hooks.after?.();
  }

  /**
   * Show the held ERROR lines (holdErrors) that no `shown` message covers: a line is covered when
   * its message or its `error` field is part of a shown message, or contains one. Then hold no more.
   */
  releaseHeldErrors(shown: readonly string[] = []): void {
    const root = this.root ?? this;
    const held = root.held;
    root.held = [];
    const texts = shown.filter((t) => t.trim() !== '');
    for (const h of held) {
      const covered = h.about.some((a) => a !== '' && texts.some((t) => t.includes(a) || a.includes(t)));
      if (!covered) this.toStderr(h.line);
    }
  }

  private write(level: LogLevel, msg: string, fields?: LogFields): void {
    const root = this.root ?? this;
    const toFile = root.fd !== undefined && LEVELS[level] >= this.level;
    const toStderr = root.options.stderr !== false && LEVELS[level] >= this.stderrLevel;
    if (!toFile && !toStderr) return;
    const all = { ...this.bindings, ...fields };
    const parts = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`);
    const line = this.redactor
      .redact(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}${parts.length ? ' ' + parts.join(' ') : ''}`)
      .replace(/\n/g, '\n    ');
    if (toStderr) {
      const shown = (root.options.decorateStderr?.(level, line) ?? line) + '\n';
      if (level === 'error' && root.options.holdErrors) {
        const about = [msg, typeof all.error === 'string' ? all.error : all.error instanceof Error ? all.error.message : ''];
        root.held.push({ line: shown, about: about.map((a) => this.redactor.redact(a)) });
      } else this.toStderr(shown);
    }
    if (toFile && root.fd !== undefined) {
      try {
        writeSync(root.fd, line + '\n');
      } catch (err) {
        // A LOG_FILE that cannot be written (its disk is full) must not fail the run it logs:
        // say so once on stderr; later lines are tried again, so logging resumes with free space.
        if (!root.fileFailed) {
          root.fileFailed = true;
          const e = fsError(err, 'write log file', root.options.file ?? 'LOG_FILE');
          this.toStderr(
            `${new Date().toISOString()} WARN  ${this.redactor.redact(e.message)}; lines are missing from the log file until it can be written\n`,
          );
        }
      }
    }
  }

  debug(msg: string, fields?: LogFields): void {
    this.write('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.write('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.write('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.write('error', msg, fields);
  }
  child(bindings: LogFields): Logger {
    return new LineLogger(this.options, { ...this.bindings, ...bindings }, this.root ?? this);
  }
}

/** Collects lines in memory: for tests and for callers that want the log as data. Messages are redacted. */
export class MemoryLogger implements Logger {
  readonly lines: { level: LogLevel; msg: string; fields: LogFields }[];
  constructor(
    private readonly bindings: LogFields = {},
    lines?: { level: LogLevel; msg: string; fields: LogFields }[],
    readonly redactor: Redactor = new Redactor(),
  ) {
    this.lines = lines ?? [];
  }
  private push(level: LogLevel, msg: string, fields?: LogFields) {
    this.lines.push({ level, msg: this.redactor.redact(msg), fields: { ...this.bindings, ...fields } });
  }
  debug(msg: string, fields?: LogFields) {
    this.push('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields) {
    this.push('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields) {
    this.push('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields) {
    this.push('error', msg, fields);
  }
  child(bindings: LogFields): Logger {
    return new MemoryLogger({ ...this.bindings, ...bindings }, this.lines, this.redactor);
  }
}
