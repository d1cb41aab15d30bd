import { dirname } from 'node:path';
import { ensureGoBinary } from './go-binary.js';

/** The age release built for post-quantum keys (age1pq1…, age 1.3+); Debian 12's package is 1.1.1. */
export const AGE_VERSION = 'v1.3.2';

/**
 * The folder holding age ≥ 1.3 and its age-keygen: the folder of AGE_PQ_BIN, else the cached build,
 * else built once with `go install filippo.io/age/cmd/...` (as .ci/run does first). Never the age
 * on PATH, which on Debian 12 is the 1.1.1 the other tests use.
 */
export async function newerAgeDir(log: (msg: string) => void = (m) => process.stderr.write(m + '\n')): Promise<string> {
  const bin = await ensureGoBinary(
    { name: 'age', version: AGE_VERSION, envVar: 'AGE_PQ_BIN', module: 'filippo.io/age/cmd/...', fromPath: false },
    log,
  );
  return dirname(bin);
}
