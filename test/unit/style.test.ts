import { describe, expect, it } from 'vitest';
import { colorEnabled, createStyle } from '../../src/cli/style.js';
import { formatDuration, formatTime } from '../../src/model/human-units.js';

const tty = { isTTY: true };
const pipe = { isTTY: false };

describe('cli/style', () => {
  it('colours a terminal: each word wrapped in its SGR code and reset after', () => {
    const s = createStyle(tty, { TERM: 'xterm-256color' });
    expect(s.enabled).toBe(true);
    expect(s.ok('[ok]')).toBe('\x1b[32m[ok]\x1b[39m');
    expect(s.fail('FAILED')).toBe('\x1b[31mFAILED\x1b[39m');
    expect(s.warn('PARTIAL')).toBe('\x1b[33mPARTIAL\x1b[39m');
    expect(s.dim('hint:')).toBe('\x1b[2mhint:\x1b[22m');
  });

  it('NO_COLOR (any non-empty value) turns colour off, even on a terminal and with FORCE_COLOR', () => {
    for (const env of [{ NO_COLOR: '1' }, { NO_COLOR: 'yes', FORCE_COLOR: '1' }, { NO_COLOR: 'true', TERM: 'xterm' }]) {
      const s = createStyle(tty, env);
      expect(s.enabled).toBe(false);
      for (const f of [s.ok, s.warn, s.fail, s.dim, s.bold]) expect(f('[FAIL] PROBLEM')).toBe('[FAIL] PROBLEM');
    }
    // An empty NO_COLOR does not count (no-color.org).
    expect(colorEnabled(tty, { NO_COLOR: '', TERM: 'xterm' })).toBe(true);
  });

  it('no colour on a pipe or a dumb terminal unless FORCE_COLOR asks for it', () => {
    expect(colorEnabled(pipe, {})).toBe(false);
    expect(colorEnabled(tty, { TERM: 'dumb' })).toBe(false);
    expect(colorEnabled(pipe, { FORCE_COLOR: '1' })).toBe(true);
    expect(colorEnabled(tty, { FORCE_COLOR: '0' })).toBe(false);
    expect(createStyle(pipe, {}).fail('FAILED')).toBe('FAILED');
  });
});

describe('human units', () => {
  it('one duration style: a number and its unit, no space', () => {
    expect([373, 3140, 42_000, 90_000, 600_000].map(formatDuration)).toEqual(['373ms', '3.1s', '42s', '1m 30s', '10m']);
  });

  it('one time style: UTC to the second, as `pgbak list` shows it', () => {
    expect(formatTime('2026-12-01T19:05:59.865Z')).toBe('2026-12-01 19:05:59Z');
    expect(formatTime(new Date(Date.UTC(2026, 11, 1, 19, 5, 56)))).toBe('2026-12-01 19:05:56Z');
    expect(formatTime(Date.UTC(2026, 0, 2))).toBe('2026-01-02 00:00:00Z');
    expect(formatTime('not a time')).toBe('unknown');
  });
});
