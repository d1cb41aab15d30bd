/** For "did you mean": how far a typed name is from a known one. */

/** Three rows of the distance matrix, reused: no allocation a call (every command checks its environment at start-up, src/config/typos.ts). */
let rows: [Uint16Array, Uint16Array, Uint16Array] = [new Uint16Array(64), new Uint16Array(64), new Uint16Array(64)];

/** Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of neighbours each cost 1. */
export function editDistance(a: string, b: string): number {
  const n = b.length;
  if (rows[0].length <= n) rows = [new Uint16Array(n + 1), new Uint16Array(n + 1), new Uint16Array(n + 1)];
  // older: row i-2, prev: row i-1, cur: row i.
  let [older, prev, cur] = rows;
  for (let j = 0; j <= n; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    const ai = a.charCodeAt(i - 1);
    for (let j = 1; j <= n; j++) {
      const bj = b.charCodeAt(j - 1);
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (ai === bj ? 0 : 1));
      if (i > 1 && j > 1 && ai === b.charCodeAt(j - 2) && a.charCodeAt(i - 2) === bj) d = Math.min(d, older[j - 2]! + 1);
      cur[j] = d;
    }
    [older, prev, cur] = [prev, cur, older];
  }
  return prev[n]!;
}
