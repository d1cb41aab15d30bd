import { formatBytes } from '../model/human-units.js';
import type { SizeJudgement } from '../model/size-judgement.js';

/**
 * Size anomalies: a backup much smaller than usual often means a dropped table or a dump of the
 * wrong database; a much larger one, a runaway table or a missing compression step. Both deserve
 * a human look even though the run itself succeeded.
 */

/** How many earlier good backups the median is taken over (the newest ones). */
export const SIZE_HISTORY_WINDOW = 7;
/** Fewer earlier good backups than this: no judgement. */
export const SIZE_HISTORY_MINIMUM = 3;

export type { SizeJudgement } from '../model/size-judgement.js';

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function formatPercent(fraction: number): string {
  return `${Math.round(fraction * 1000) / 10}%`;
}

/**
 * Compare a backup's size with the median of the previous good backups of the same database.
 *
 * Pure. `previousGoodSizes` lists the sizes of earlier *good* backups, newest first; only the
 * newest {@link SIZE_HISTORY_WINDOW} count. With fewer than {@link SIZE_HISTORY_MINIMUM} there is
 * no judgement (`anomalous: false`, no median). The size is anomalous when it differs from the
 * median by strictly more than `tolerance × median` (tolerance is a fraction: 0.5 for 50 %),
 * so a size exactly on the edge is still normal.
 */
export function judgeSize(currentBytes: number, previousGoodSizes: readonly number[], tolerance: number): SizeJudgement {
  if (!Number.isFinite(currentBytes) || currentBytes < 0) {
    return { anomalous: false, reason: `no judgement: the size of this backup is unknown (${currentBytes})` };
  }
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    return { anomalous: false, reason: `no judgement: invalid tolerance ${tolerance}` };
  }
  const window = previousGoodSizes.filter((s) => Number.isFinite(s) && s >= 0).slice(0, SIZE_HISTORY_WINDOW);
  if (window.length < SIZE_HISTORY_MINIMUM) {
    return {
      anomalous: false,
      reason: `no judgement: ${window.length} earlier good backup${window.length === 1 ? '' : 's'}, at least ${SIZE_HISTORY_MINIMUM} are needed`,
    };
  }
  const med = median(window);
  const diff = currentBytes - med;
  const deviation = med === 0 ? (currentBytes === 0 ? 0 : Number.POSITIVE_INFINITY) : diff / med;
  const anomalous = Math.abs(diff) > tolerance * med;
  const basis = `the median ${formatBytes(med)} of the last ${window.length} good backups (tolerance ±${formatPercent(tolerance)})`;
  let reason: string;
  if (!Number.isFinite(deviation)) {
    reason = `size ${formatBytes(currentBytes)} while ${basis} is zero`;
  } else if (diff === 0) {
    reason = `size ${formatBytes(currentBytes)} equals ${basis}`;
  } else {
    const direction = diff > 0 ? 'larger' : 'smaller';
    reason = `size ${formatBytes(currentBytes)} is ${formatPercent(Math.abs(deviation))} ${direction} than ${basis}`;
  }
  return { anomalous, median: med, deviation, reason };
}
