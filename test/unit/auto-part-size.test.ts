import { describe, expect, it } from 'vitest';
import { autoPartSize } from '../../src/api/backup.js';

const MiB = 1024 * 1024;

describe('autoPartSize (STORAGE_PART_SIZE=auto for a backup)', () => {
  it('is 32 MiB up to a database of ~160 GiB, then grows so that 10 000 parts cover twice its size', () => {
    expect(autoPartSize(0)).toBe(32 * MiB);
    expect(autoPartSize(800e6)).toBe(32 * MiB);
    expect(autoPartSize(160 * 1024 * MiB)).toBe(33 * MiB);
    const tb = 1024 ** 4;
    const size = autoPartSize(tb);
    expect(size % MiB).toBe(0);
    expect(size * 10_000).toBeGreaterThanOrEqual(2 * tb);
    expect((size - MiB) * 10_000).toBeLessThan(2 * tb);
  });
});
