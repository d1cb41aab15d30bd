import { Cron } from 'croner';

/**
 * A job's cron schedule in its time zone, computed with croner (DST-aware: a time skipped by a
 * spring-forward change runs at the first valid time after it, a repeated one runs once).
 * Only the arithmetic comes from croner; the daemon owns its timers (see daemon.ts).
 */
export interface Schedule {
  readonly expression: string;
  readonly timezone: string;
  /** The first run strictly after `after`, or undefined when the expression never matches again. */
  nextAfter(after: Date): Date | undefined;
}

/**
 * Parse a 5-field (`min hour dom mon dow`) or 6-field (seconds first) cron expression in an IANA
 * time zone. Throws an Error whose message says what is wrong (pattern, time zone, or a pattern
 * that never matches, such as `0 0 30 2 *`).
 */
export function parseSchedule(expression: string, timezone: string): Schedule {
  const expr = expression.trim();
  if (!isValidTimeZone(timezone)) {
    throw new Error(`unknown time zone "${timezone}" (use an IANA name such as UTC or Europe/Paris)`);
  }
  let cron: Cron;
  try {
    // UTC needs no time zone data: loading ICU's costs every command 0.1-0.4 s of start-up.
    cron = new Cron(expr, { paused: true, ...(isUtc(timezone) ? { utcOffset: 0 } : { timezone }), mode: '5-or-6-parts' });
  } catch (err) {
    throw new Error(`invalid cron expression "${expr}": ${cronMessage(err)}`);
  }
  if (cron.nextRun(new Date()) === null) {
    throw new Error(`cron expression "${expr}" never matches a date`);
  }
  return {
    expression: expr,
    timezone,
    nextAfter(after: Date): Date | undefined {
      return cron.nextRun(after) ?? undefined;
    },
  };
}

/** The problem with an expression and time zone, or undefined when both are valid. */
export function scheduleProblem(expression: string, timezone: string): string | undefined {
  try {
    parseSchedule(expression, timezone);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** True for an IANA time zone name the runtime knows (UTC, Europe/Paris, America/New_York …). */
export function isValidTimeZone(timezone: string): boolean {
  if (timezone.trim() === '') return false;
  if (isUtc(timezone)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/** UTC by its usual names: the default BACKUP_TZ, checked and computed without ICU's time zone data. */
const isUtc = (timezone: string): boolean => /^(?:Etc\/)?(?:UTC|UCT|Zulu|Universal)$/.test(timezone);

/** `2026-11-28 18:00:00` in `timezone`, for log lines next to the ISO instant. */
export function formatInTimeZone(date: Date, timezone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: timezone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(date);
  const get = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '??';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')}`;
}

function cronMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  // croner prefixes its messages with the class name ("CronPattern: Invalid value for minute: 61").
  return text.replace(/^Cron\w*:\s*/, '');
}
