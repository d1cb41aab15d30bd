import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import xterm from '@xterm/headless';
import { beforeAll, describe, expect, it } from 'vitest';
import { backupEnv, PGBAK_BIN, runCli } from '../helpers/cli.js';
import { createDatabase, sql, tempDir, uniqueId } from '../helpers/services.js';

/**
 * What a person at a terminal sees. Each run goes through a real pseudo-terminal (util-linux
 * `script`) of a given width; the raw bytes are fed into a real terminal emulator (xterm.js,
 * headless) and the assertions read its final screen, lines as the terminal shows them.
 */

const ROWS = 60;
const BAR = /[\u2588\u2591]/;
const TIMESTAMP = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/;

interface TtyRun {
  code: number | null;
  raw: string;
  /** The screen's logical lines (a line the terminal wrapped is joined back), trailing blanks removed. */
  screen: string[];
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Run bin/pgbak under a pty `cols` wide and return the raw bytes and the screen they leave. */
async function runOnTty(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  cols: number,
  options: { ctrlCWhen?: (raw: string) => boolean; answer?: { when: (raw: string) => boolean; text: string } } = {},
): Promise<TtyRun> {
  const command = `stty cols ${cols} rows ${ROWS}; exec ${[process.execPath, PGBAK_BIN, ...args].map(shellQuote).join(' ')}`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    cwd: tempDir(),
    env: { ...env, TERM: 'xterm-256color', COLUMNS: String(cols), LINES: String(ROWS) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  let typed = false;
  let answered = false;
  child.stdout.on('data', (d: Buffer) => {
    chunks.push(d);
    if (!answered && options.answer?.when(Buffer.concat(chunks).toString('utf8'))) {
      answered = true;
      child.stdin.write(options.answer.text);
    }
    // Ctrl-C typed at the terminal: the pty's line discipline sends SIGINT to pgbak and pg_dump.
    if (!typed && options.ctrlCWhen?.(Buffer.concat(chunks).toString('utf8'))) {
      typed = true;
      child.stdin.write('\x03');
    }
  });
  child.stderr.on('data', (d: Buffer) => chunks.push(d));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  const raw = Buffer.concat(chunks).toString('utf8');
  return { code, raw, screen: await screenOf(raw, cols) };
}

async function screenOf(raw: string, cols: number): Promise<string[]> {
  const term = new xterm.Terminal({ cols, rows: ROWS, scrollback: 5000, allowProposedApi: true });
  await new Promise<void>((resolve) => term.write(raw, resolve));
  const buffer = term.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buffer.length; i++) {
    const line = buffer.getLine(i);
    if (!line) continue;
    const text = line.translateToString(true);
    if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += text;
    else lines.push(text);
  }
  term.dispose();
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  return lines;
}

/** No line of the screen shows a bar fragment and log text together. */
function expectNoGluedLines(screen: readonly string[]): void {
  const glued = screen.filter((l) => BAR.test(l) && (TIMESTAMP.test(l) || /\b(INFO|WARN|ERROR)\b/.test(l)));
  expect(glued, screen.join('\n')).toEqual([]);
}

/** The summary is the last thing on the screen, intact: from its first line to the end, nothing else. */
function expectSummaryLast(screen: readonly string[], first: RegExp, last: RegExp): void {
  const start = screen.findIndex((l) => first.test(l));
  expect(start, screen.join('\n')).toBeGreaterThanOrEqual(0);
  const summary = screen.slice(start);
  expect(summary.at(-1), screen.join('\n')).toMatch(last);
  // Its other lines are its own indented detail lines: no log text, no bar, no leftovers.
  for (const l of summary.slice(1)) expect(l, screen.join('\n')).toMatch(/^ {2}\S/);
  for (const l of summary) {
    expect(l).not.toMatch(BAR);
    expect(l).not.toMatch(TIMESTAMP);
  }
  // The bar was taken off before the summary: no fragment of it is left anywhere.
  expect(screen.filter((l) => BAR.test(l))).toEqual([]);
}

/** The bar was live (drawn) before `text` was written: the test exercised a log line under a live bar. */
function expectBarLiveBefore(raw: string, text: string): void {
  const at = raw.indexOf(text);
  expect(at, 'the text was written').toBeGreaterThan(0);
  expect(BAR.test(raw.slice(0, at)), 'a bar was drawn before it').toBe(true);
}

// About 60 MB on disk of poorly compressible text: pg_dump -Z9 takes a few seconds, long enough
// for the bar to be drawn many times and for log lines to be written while it is live.
const BIG_SQL = `
CREATE TABLE big (id bigint PRIMARY KEY, a text, b text);
INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text), md5((g * 31)::text) || md5((g * 37)::text)
FROM generate_series(1, 350000) g;
CREATE TABLE small (id int PRIMARY KEY, note text);
INSERT INTO small SELECT g, 'note ' || g FROM generate_series(1, 1000) g;
`;

describe.each([80, 160])('on a %i-column terminal', (cols) => {
  let db: string;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    db = await createDatabase('term', BIG_SQL);
    dir = tempDir();
    env = backupEnv({ database: db, dir });
  });

  it('backup: no INFO lines without -v, the summary intact and last', async () => {
    const r = await runOnTty(['backup'], env, cols);
    expect(r.code, r.raw).toBe(0);
    expect(BAR.test(r.raw), 'the bar was drawn').toBe(true);
    expectNoGluedLines(r.screen);
    expect(r.screen.filter((l) => /\bINFO\b/.test(l))).toEqual([]);
    expectSummaryLast(r.screen, /^backup ok: term_/, /^ {2}sha256 [0-9a-f]{64}$/);
    // LOG_FILE keeps every INFO line.
    expect(readFileSync(join(dir, 'logs', 'backup-db.log'), 'utf8')).toMatch(/ INFO {2}backup finished /);
  });

  it('backup -v: INFO lines above the live bar, `backup finished` visible, the summary intact', async () => {
    const r = await runOnTty(['backup', '-v'], env, cols);
    expect(r.code, r.raw).toBe(0);
    expectBarLiveBefore(r.raw, 'backup finished');
    expectNoGluedLines(r.screen);
    const finished = r.screen.filter((l) => /^\S+Z INFO {2}backup finished /.test(l));
    expect(finished, r.screen.join('\n')).toHaveLength(1);
    expect(r.screen.filter((l) => /^\S+Z INFO /.test(l)).length).toBeGreaterThan(2);
    expectSummaryLast(r.screen, /^backup ok: term_/, /^ {2}sha256 [0-9a-f]{64}$/);
  });

  it('restore --create, with and without -v: the RTO summary intact and last', async () => {
    for (const verbose of [false, true]) {
      const target = `term_restored_${uniqueId()}`;
      const r = await runOnTty(
        ['restore', '--latest', '--target', target, '--create', '--yes', ...(verbose ? ['--verbose'] : [])],
        env,
        cols,
      );
      expect(r.code, r.raw).toBe(0);
      expect(BAR.test(r.raw), 'the bar was drawn').toBe(true);
      expectNoGluedLines(r.screen);
      const infos = r.screen.filter((l) => /^\S+Z INFO /.test(l));
      if (verbose) {
        expectBarLiveBefore(r.raw, 'restore finished');
        expect(
          r.screen.filter((l) => /INFO {2}restore finished /.test(l)),
          r.screen.join('\n'),
        ).toHaveLength(1);
      } else expect(infos, r.screen.join('\n')).toEqual([]);
      expectSummaryLast(r.screen, /^restore ok: term_/, /^ {2}RTO \S+ \(checks \d\S*, pg_restore \d\S*\)$/);
      expect(await sql(target, 'SELECT count(*) FROM big')).toBe('350000');
    }
  });
});

describe('a failure on a terminal', () => {
  it('Ctrl-C during the dump: the warning above the bar, then the bar gone and the error on its own line', async () => {
    // Three times the table of the other tests: its dump at gzip:9 takes long enough that a loaded
    // machine, slow to deliver the key press, still has the dump under way when it arrives.
    const db = await createDatabase('term', BIG_SQL.replace('350000', '1050000'));
    const env = backupEnv({ database: db, dir: tempDir() });
    // Typed once the bar has been drawn (the dump is under way).
    const r = await runOnTty(['backup'], env, 100, { ctrlCWhen: (raw) => (raw.match(/\u2591/g) ?? []).length > 24 });
    expect(r.code, r.raw).toBe(130);
    expectNoGluedLines(r.screen);
    expect(
      r.screen.filter((l) => BAR.test(l)),
      r.screen.join('\n'),
    ).toEqual([]);
    expect(
      r.screen.filter((l) => /WARN {2}received SIGINT: stopping the backup/.test(l)),
      r.screen.join('\n'),
    ).toHaveLength(1);
    const errors = r.screen.filter((l) => l.includes('pgbak: error:'));
    expect(errors, r.screen.join('\n')).toEqual([expect.stringMatching(/^pgbak: error: .*interrupted/)]);
    expect(
      r.screen.filter((l) => /\bERROR\b/.test(l)),
      r.screen.join('\n'),
    ).toEqual([]);
    expect(r.screen.at(-1), r.screen.join('\n')).toMatch(/^hint: /);
  });

  it('is shown once, as `pgbak: error:` and its hint, not also as an ERROR log line; off a terminal the log line stays', async () => {
    const dir = tempDir();
    const env = backupEnv({ database: `missing_${uniqueId()}`, dir });
    const r = await runOnTty(['backup'], env, 120);
    expect(r.code, r.raw).not.toBe(0);
    const errors = r.screen.filter((l) => l.startsWith('pgbak: error: '));
    expect(errors, r.screen.join('\n')).toHaveLength(1);
    expect(r.screen.filter((l) => l.startsWith('hint: '))).toHaveLength(1);
    expect(
      r.screen.filter((l) => /\bERROR\b/.test(l)),
      r.screen.join('\n'),
    ).toEqual([]);
    // The log file keeps the ERROR line, and so does stderr when it is not a terminal (cron mail).
    const plain = await runCli(['backup'], { env });
    expect(plain.code).toBe(r.code);
    expect(plain.stderr).toMatch(/ ERROR backup failed /);
    expect(plain.stderr).toMatch(/^pgbak: error: /m);
    expect(plain.stderr).not.toContain('\u001b[');
    expect(readFileSync(join(dir, 'logs', 'backup-db.log'), 'utf8')).toMatch(/ ERROR backup failed /);
  });

  it('the restore prompt names the server, and answering n cancels without an ERROR line', async () => {
    const db = await createDatabase('termn', 'CREATE TABLE keep (id int); INSERT INTO keep VALUES (42);');
    const dir = tempDir();
    const env = backupEnv({ database: db, dir });
    expect((await runCli(['backup'], { env })).code).toBe(0);
    const r = await runOnTty(['restore', '--latest', '--target', db], env, 120, {
      answer: { when: (raw) => raw.includes('[y/N]'), text: 'n\r' },
    });
    expect(r.code, r.raw).toBe(2);
    const port = new URL(env.DATABASE_URL!).port;
    expect(r.screen.join('\n')).toMatch(new RegExp(`database ${db} on 127\\.0\\.0\\.1:${port} holds \\d+ objects`));
    expect(
      r.screen.filter((l) => l.includes('pgbak: error:')),
      r.screen.join('\n'),
    ).toEqual(['pgbak: error: restore cancelled; the target was not changed']);
    expect(readFileSync(join(dir, 'logs', 'backup-db.log'), 'utf8')).not.toMatch(/ERROR/);
    expect(await sql(db, 'SELECT id FROM keep')).toBe('42');
  });
});
