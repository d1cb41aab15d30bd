import type { Compression } from '../config/parsers.js';
import { ChildStage } from './child-stage.js';

/** How a compression setting is carried out for a given pg_dump. */
export interface CompressionPlan {
  /** pg_dump's own compression arguments. */
  readonly pgDumpArgs: readonly string[];
  /** `pg_dump` when the archive compresses itself, `stream` when a zstd/lz4 layer wraps it. */
  readonly by: 'pg_dump' | 'stream';
  /** Extra stream layer (zstd or lz4) for pg_dump versions that lack the method. */
  readonly streamMethod: 'zstd' | 'lz4' | undefined;
  streamStage(): ChildStage | undefined;
}

/**
 * gzip is pg_dump's own (-Z N). zstd and lz4 are pg_dump's own from PostgreSQL 16 (the archive
 * stays a plain .dump); with an older pg_dump the archive is dumped uncompressed and the
 * machine's zstd / lz4 binary compresses the stream in a separate process (a second core
 * working in parallel with pg_dump), producing .dump.zst / .dump.lz4.
 */
export function compressionPlan(c: Compression, pgDumpMajor: number): CompressionPlan {
  if (c.method === 'none') return plan(['-Z', '0'], 'pg_dump', undefined);
  if (c.method === 'gzip') return plan(['-Z', String(c.level)], 'pg_dump', undefined);
  if (pgDumpMajor >= 16) return plan([`--compress=${c.method}:${c.level}`], 'pg_dump', undefined);
  return plan(['-Z', '0'], 'stream', c.method, () =>
    c.method === 'zstd'
      ? new ChildStage({
          label: 'zstd',
          command: 'zstd',
          args: [`-${c.level}`, ...(c.level > 19 ? ['--ultra'] : []), '-T0', '-q', '-c'],
          input: true,
        })
      : new ChildStage({ label: 'lz4', command: 'lz4', args: [`-${c.level}`, '-q', '-c'], input: true }),
  );
}

function plan(
  pgDumpArgs: string[],
  by: 'pg_dump' | 'stream',
  streamMethod: 'zstd' | 'lz4' | undefined,
  make?: () => ChildStage,
): CompressionPlan {
  return { pgDumpArgs, by, streamMethod, streamStage: () => make?.() };
}

/** A decompression stage for an artifact compressed in the stream. */
export function decompressStage(method: 'zstd' | 'lz4'): ChildStage {
  return new ChildStage({ label: method, command: method, args: ['-d', '-q', '-c'], input: true });
}
