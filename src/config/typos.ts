/**
 * Typos are not silent: a variable that looks like one of pgbak's but is not (`RETENTION_DAY`,
 * `BACKUP_COMPRESION`) is named in a warning with the closest known name, instead of being
 * ignored while the default applies. Pure functions: the loader gives them the layers it read.
 */
import { editDistance } from '../model/edit-distance.js';
import { variables } from './schema.js';

/**
 * Prefixes of pgbak's variables. Unknown names with one of them, in `.env`, are most likely
 * pgbak typos. PG_DUMP (not PG): libpq's PGHOST/PGPASSWORD have no underscore, and images of
 * PostgreSQL set PG_MAJOR and PG_VERSION.
 */
export const PGBAK_PREFIXES = [
  'BACKUP_',
  'STORAGE_',
  'GPG_',
  'RETENTION_',
  'NOTIFY_',
  'METRICS_',
  'VERIFY_',
  'PGBAK_',
  'PG_DUMP',
  'AGE_',
] as const;

/** Variables of other tools that share a prefix with pgbak's: never reported. */
const FOREIGN_NAMES: ReadonlySet<string> = new Set(['GPG_TTY', 'GPG_AGENT_INFO', 'NOTIFY_SOCKET']);

/** Another tool's name, or a URL for `database_url_env` (SHOP_DATABASE_URL): never a typo of ours. */
function isForeign(name: string): boolean {
  const upper = name.toUpperCase();
  return FOREIGN_NAMES.has(upper) || upper.endsWith('_DATABASE_URL');
}

const KNOWN: readonly string[] = variables.map((v) => v.name);
const KNOWN_SET: ReadonlySet<string> = new Set(KNOWN);

/** How far a name may be from a known one and still be taken for a typo of it. */
function maxDistance(name: string): number {
  return name.length <= 6 ? 1 : name.length <= 12 ? 2 : 3;
}

/**
 * The candidate closest to `name` (case-insensitive), when it is close enough to be a likely typo;
 * undefined otherwise. Ties go to the earlier candidate.
 */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const upper = name.toUpperCase();
  const counts = letterCounts(upper);
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  const limit = maxDistance(name);
  for (const candidate of candidates) {
    // Two lower bounds of the distance, cheap beside the matrix: the lengths' difference, and half
    // the letters one name has and the other lacks (a substitution changes two counts, an
    // insertion or deletion one, a swap none). A candidate they put beyond the limit or no closer
    // than the best so far cannot change the answer. Every command checks the whole environment
    // against every variable at start-up: 30-60 names against ~100, in node's interpreter (bin/pgbak
    // runs with --no-opt), 18-21 ms a layer with the length alone, 2-3 ms with both (docs/performance.md).
    const cand = candidate.toUpperCase();
    const byLength = Math.abs(cand.length - upper.length);
    if (byLength > limit || byLength >= bestDistance) continue;
    const byLetters = Math.ceil(countsApart(counts, cand) / 2);
    if (byLetters > limit || byLetters >= bestDistance) continue;
    const d = editDistance(upper, cand);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= maxDistance(name) ? best : undefined;
}

/** How many times each character code (mod 64) occurs in `s`. */
function letterCounts(s: string): Int16Array {
  const counts = new Int16Array(64);
  for (let i = 0; i < s.length; i++) counts[s.charCodeAt(i) & 63]!++;
  return counts;
}

/** The sum over character codes (mod 64) of how far `s`'s counts are from `counts`. */
function countsApart(counts: Int16Array, s: string): number {
  const diff = counts.slice();
  for (let i = 0; i < s.length; i++) diff[s.charCodeAt(i) & 63]!--;
  let sum = 0;
  for (let i = 0; i < 64; i++) sum += Math.abs(diff[i]!);
  return sum;
}

/** ` did you mean X?`-style suffix, or nothing. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const match = closestName(name, candidates);
  return match === undefined ? '' : `; did you mean ${match}?`;
}

/** Whether `name` has one of pgbak's prefixes (and is not another tool's variable). */
export function hasPgbakPrefix(name: string): boolean {
  const upper = name.toUpperCase();
  return !isForeign(upper) && PGBAK_PREFIXES.some((p) => upper.startsWith(p));
}

/** Where a layer of variables came from: `the environment`, or the env file as it was named (`.env`, `--env-file` FILE). */
export type VariableSource = 'the environment' | (string & {});

/**
 * Warnings for the unknown variables of one layer that look like pgbak's.
 * - `.env` or `--env-file` (pgbak's own file): every unknown name with a pgbak prefix, and any name close to a
 *   known one (`RETENTON_DAYS`, `DATABSE_URL`);
 * - the environment (shared with every other program of the host): only names close to a known one,
 *   so another tool's `BACKUP_HOME` is not reported on every run.
 * In name order (parsed `.env` files do not keep the order of their lines).
 */
export function unknownVariableWarnings(layer: Readonly<Record<string, string | undefined>>, source: VariableSource): string[] {
  const out: string[] = [];
  for (const name of Object.keys(layer).sort()) {
    if (layer[name] === undefined || KNOWN_SET.has(name) || isForeign(name)) continue;
    const match = closestName(name, KNOWN);
    if (match === undefined && !(source !== 'the environment' && hasPgbakPrefix(name))) continue;
    out.push(`unknown variable ${name} in ${source} (ignored)${match === undefined ? '' : `; did you mean ${match}?`}`);
  }
  return out;
}
