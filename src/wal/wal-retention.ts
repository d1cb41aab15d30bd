import type { ArchivedWal } from './wal-archive.js';
import type { BaseManifest } from './base-manifest.js';
import { DEFAULT_SEGMENT_SIZE, segmentNumber } from './wal-names.js';

/**
 * Which archived WAL files retention may delete, as a pure function: the kept base backups are
 * decided first (by the dumps' policy, retention/policy.ts); a WAL file goes only when its
 * segment is older than the start segment of every kept base backup. Recovery only replays
 * forward from a base backup's start, so such a segment is needed by none of them, whatever its
 * timeline. `.history` files always stay (a restore follows them; they are tiny). With no kept
 * base backup nothing goes: WAL without a base backup is kept and said.
 */
export interface WalRetentionPlan {
  /** The archived files to delete, oldest first. */
  readonly remove: readonly ArchivedWal[];
  /** The start segment of the oldest kept base backup (the first one kept); undefined when none is kept. */
  readonly cutoff: string | undefined;
  readonly warnings: readonly string[];
}

export function planWalRetention(
  archived: readonly ArchivedWal[],
  kept: readonly Pick<BaseManifest, 'name' | 'firstSegment'>[],
  segmentSize = DEFAULT_SEGMENT_SIZE,
): WalRetentionPlan {
  if (kept.length === 0) {
    const warnings = archived.length
      ? ['the WAL archive has no base backup: its WAL is kept (it cannot be restored alone); run `pgbak basebackup`']
      : [];
    return { remove: [], cutoff: undefined, warnings };
  }
  const oldest = [...kept].sort((a, b) => {
    const d = segmentNumber(a.firstSegment, segmentSize) - segmentNumber(b.firstSegment, segmentSize);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  })[0]!;
  const cut = segmentNumber(oldest.firstSegment, segmentSize);
  const remove = archived.filter(
    (a) => a.file.kind !== 'history' && a.file.segment !== undefined && segmentNumber(a.file.segment, segmentSize) < cut,
  );
  return { remove, cutoff: oldest.firstSegment, warnings: [] };
}
