import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure } from './measure.js';
import { pgEnv, result, type BenchContext, type Scenario } from './scenarios.js';

const FILTER = fileURLToPath(new URL('./typage-filter.mjs', import.meta.url));

/** Why typage cannot run here (TYPAGE_DIR unset or without the package), else undefined. */
export function typageMissing(): string | undefined {
  const dir = process.env.TYPAGE_DIR;
  if (dir && existsSync(join(dir, 'node_modules', 'age-encryption', 'package.json'))) return undefined;
  return 'age_typage skipped: set TYPAGE_DIR to a directory with the age-encryption package (npm install --prefix DIR age-encryption)';
}

/** An age key pair in the scratch directory, made once: the identity file and its recipient. */
function keyPair(c: BenchContext): { identity: string; recipient: string } {
  const identity = join(c.scratch, 'age-key.txt');
  if (!existsSync(identity)) execFileSync('age-keygen', ['-o', identity], { stdio: 'ignore' });
  return { identity, recipient: execFileSync('age-keygen', ['-y', identity], { encoding: 'utf8' }).trim() };
}

/**
 * age in the stream (issue 13): the bench dump through zstd into the `age` binary or into typage
 * (the `age-encryption` npm package, in node), and the file decrypted again by the same tool.
 * The stream pgbak runs is pg_dump → zstd → age; these time that chain with each encrypter.
 */
export function ageScenarios(zstdLevel: number): Scenario[] {
  const scenario = (id: 'age_bin' | 'age_typage'): Scenario => {
    const binary = id === 'age_bin';
    const encrypt = binary ? 'age -r "$BENCH_RECIPIENT"' : 'node "$BENCH_FILTER" encrypt "$BENCH_RECIPIENT"';
    const decrypt = binary ? 'age -d -i "$BENCH_IDENTITY"' : 'node "$BENCH_FILTER" decrypt "$BENCH_IDENTITY"';
    return {
      id,
      title: `pg_dump -Z0 | zstd -${zstdLevel} -T0 | ${binary ? 'age (the binary)' : 'typage (age-encryption in node)'} > file, then decrypt it`,
      command: `pg_dump -Fc -Z0 | zstd -${zstdLevel} -T0 | ${binary ? 'age -r KEY' : 'node typage-filter.mjs encrypt KEY'} > file; ${binary ? 'age -d -i key.txt' : 'node typage-filter.mjs decrypt key.txt'} < file > /dev/null`,
      async run(c) {
        const { identity, recipient } = keyPair(c);
        const file = join(c.scratch, `${id}.dump.zst.age`);
        const env = {
          ...pgEnv(c),
          TYPAGE_DIR: process.env.TYPAGE_DIR ?? '',
          BENCH_PG_DUMP: join(c.pg.bindir, 'pg_dump'),
          BENCH_FILTER: FILTER,
          BENCH_RECIPIENT: recipient,
          BENCH_IDENTITY: identity,
          BENCH_OUT: file,
        };
        const enc = await measure(
          {
            command: 'bash',
            args: ['-c', `set -o pipefail; "$BENCH_PG_DUMP" -Fc -Z0 | zstd -${zstdLevel} -T0 -q -c | ${encrypt} > "$BENCH_OUT"`],
            env,
          },
          c.scratch,
        );
        const size = statSync(file).size;
        const dec = await measure(
          { command: 'bash', args: ['-c', `set -o pipefail; ${decrypt} < "$BENCH_OUT" > /dev/null`], env },
          c.scratch,
        );
        rmSync(file, { force: true });
        const both = {
          ...enc,
          wallMs: enc.wallMs + dec.wallMs,
          cpuMs: enc.cpuMs === null || dec.cpuMs === null ? null : enc.cpuMs + dec.cpuMs,
        };
        return result(both, size, {
          'encrypt (whole chain)': Math.round(enc.wallMs),
          'its CPU': Math.round(enc.cpuMs ?? 0),
          decrypt: Math.round(dec.wallMs),
          'decrypt CPU': Math.round(dec.cpuMs ?? 0),
        });
      },
    };
  };
  return [scenario('age_bin'), scenario('age_typage')];
}
