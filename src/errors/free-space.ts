import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Free (for an unprivileged user) and total bytes of the file system holding `path`, for the
 * message of a full disk; undefined when it cannot be read. The file itself may be gone (a
 * removed temp file), so its directory, or the one above, is asked instead.
 */
export function freeSpaceOf(path: string): { free: number; total: number } | undefined {
  for (let p = path, i = 0; i < 8; p = dirname(p), i++) {
    try {
      const s = statfsSync(p);
      return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
    } catch {
      if (dirname(p) === p) break;
    }
  }
  return undefined;
}
