import { describe, expect, it } from 'vitest';
import { compressionPlan } from '../../src/pipeline/compression.js';

describe('compressionPlan', () => {
  it.each([
    ['gzip', 9, 15, ['-Z', '9'], 'pg_dump', undefined],
    ['gzip', 1, 16, ['-Z', '1'], 'pg_dump', undefined],
    ['none', 0, 15, ['-Z', '0'], 'pg_dump', undefined],
    ['zstd', 3, 15, ['-Z', '0'], 'stream', 'zstd'],
    ['lz4', 1, 15, ['-Z', '0'], 'stream', 'lz4'],
    ['zstd', 3, 16, ['--compress=zstd:3'], 'pg_dump', undefined],
    ['lz4', 5, 17, ['--compress=lz4:5'], 'pg_dump', undefined],
  ] as const)('%s:%d with pg_dump %d → %j by %s', (method, level, major, args, by, stream) => {
    const plan = compressionPlan({ method, level }, major);
    expect(plan.pgDumpArgs).toEqual(args);
    expect(plan.by).toBe(by);
    expect(plan.streamMethod).toBe(stream);
    if (by === 'pg_dump') expect(plan.streamStage()).toBeUndefined();
  });
});
