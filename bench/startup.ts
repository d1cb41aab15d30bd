/**
 * Start-up of the built CLI: `npx tsx bench/startup.ts [--runs 15] [--repo DIR]` (after `npm run build`;
 * --repo: another built checkout, e.g. an older commit, to compare).
 * Median wall time and peak RSS of `pgbak --version`, `pgbak --help` and `pgbak backup --help`
 * (bin/pgbak run as installed, its shebang's node flags included) beside `node -e 0`, the floor.
 * docs/performance.md ("Start-up") has the figures; test/unit/startup.test.ts keeps the heavy
 * packages out of these paths without timing anything.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const TIME = '/usr/bin/time';
const { values: opts } = parseArgs({ options: { runs: { type: 'string', default: '15' }, repo: { type: 'string' } } });
const REPO = resolve(opts.repo ?? fileURLToPath(new URL('..', import.meta.url)));
const BIN = join(REPO, 'bin', 'pgbak');
const runs = Math.max(1, Number(opts.runs));

const rows: [string, string[]][] = [
  ['node -e 0', [process.execPath, '-e', '0']],
  ['pgbak --version', [BIN, '--version']],
  ['pgbak --help', [BIN, '--help']],
  ['pgbak backup --help', [BIN, 'backup', '--help']],
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const gnuTime = existsSync(TIME);
process.stdout.write(`| command | median wall (ms) | median peak RSS (MB) |\n|---|---:|---:|\n`);
for (const [name, argv] of rows) {
  const walls: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < runs; i++) {
    const [cmd, ...args] = gnuTime ? [TIME, '-f', '%M', ...argv] : argv;
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd!, args, { encoding: 'utf8', cwd: REPO });
    walls.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr}`);
    // GNU time's last stderr line: the peak RSS in KB.
    if (gnuTime) rss.push(Number(r.stderr.trim().split('\n').at(-1)) / 1024);
  }
  process.stdout.write(`| \`${name}\` | ${median(walls).toFixed(0)} | ${gnuTime ? median(rss).toFixed(0) : '-'} |\n`);
}
process.stdout.write(`\n${runs} runs each, node ${process.version}\n`);
