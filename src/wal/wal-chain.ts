import type { ArchivedWal } from './wal-archive.js';
import { type TimelineSwitch, segmentName, segmentNumber } from './wal-names.js';

/** One timeline's stretch of the chain a restore would replay. */
export interface ChainStretch {
  readonly timeline: number;
  readonly first: string;
  /** The last segment this timeline contributes (the newest archived one on the last timeline). */
  readonly last: string;
  readonly segments: number;
}

export interface ChainReport {
  readonly stretches: readonly ChainStretch[];
  /** The first segment the chain needs that is not archived; undefined when complete. */
  readonly firstGap: string | undefined;
  /** Names archived twice with different content. */
  readonly conflicts: readonly string[];
}

/**
 * The WAL chain from `start` (a base backup's first segment, on `startTimeline`) to the newest
 * archived segment of the newest timeline whose history descends from it, following the switch
 * points of its `.history` file: timeline k up to the segment before its switch point (the
 * switch segment itself is a `.partial` there), the next timeline from the switch segment on.
 */
export function checkChain(
  archived: readonly ArchivedWal[],
  histories: ReadonlyMap<number, readonly TimelineSwitch[]>,
  start: { timeline: number; segment: string },
  segmentSize: number,
): ChainReport {
  const byName = new Map<string, Set<string>>();
  for (const a of archived) {
    const shas = byName.get(a.file.name) ?? new Set<string>();
    shas.add(a.sha256);
    byName.set(a.file.name, shas);
  }
  const conflicts = [...byName].filter(([, shas]) => shas.size > 1).map(([name]) => name);
  const size = BigInt(segmentSize);
  // The newest timeline that descends from the start's timeline.
  const timelines = new Set(archived.filter((a) => a.file.kind === 'segment').map((a) => a.file.timeline));
  for (const tl of histories.keys()) timelines.add(tl);
  const candidates = [...timelines]
    .filter((tl) => tl === start.timeline || (histories.get(tl) ?? []).some((s) => s.timeline === start.timeline))
    .sort((a, b) => b - a);
  const target = candidates[0] ?? start.timeline;
  const parents = target === start.timeline ? [] : (histories.get(target) ?? []).filter((s) => s.timeline >= start.timeline);
  const path: { timeline: number; from: bigint; to: bigint | undefined }[] = [];
  let from = segmentNumber(start.segment, segmentSize);
  for (const p of parents) {
    const switchSeg = p.switchpoint / size;
    path.push({ timeline: p.timeline, from, to: switchSeg - 1n });
    from = switchSeg;
  }
  path.push({ timeline: target, from, to: undefined });

  const stretches: ChainStretch[] = [];
  let firstGap: string | undefined;
  for (const leg of path) {
    let to = leg.to;
    if (to === undefined) {
      let newest = leg.from;
      for (const a of archived) {
        if (a.file.kind !== 'segment' || a.file.timeline !== leg.timeline) continue;
        const n = segmentNumber(a.file.name, segmentSize);
        if (n > newest) newest = n;
      }
      to = newest;
    }
    let count = 0;
    for (let s = leg.from; s <= to; s++) {
      const name = segmentName(leg.timeline, s, segmentSize);
      if (byName.has(name)) count++;
      else firstGap ??= name;
    }
    if (to >= leg.from) {
      stretches.push({
        timeline: leg.timeline,
        first: segmentName(leg.timeline, leg.from, segmentSize),
        last: segmentName(leg.timeline, to, segmentSize),
        segments: count,
      });
    }
  }
  return { stretches, firstGap, conflicts };
}
