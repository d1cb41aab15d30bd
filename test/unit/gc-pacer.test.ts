import { afterEach, describe, expect, it, vi } from 'vitest';

describe('paceGc', () => {
  afterEach(() => {
    delete (globalThis as { gc?: unknown }).gc;
    vi.resetModules();
  });

  it('with --expose-gc: one minor GC per 2 MiB that passed, none before', async () => {
    const gc = vi.fn();
    (globalThis as { gc?: unknown }).gc = gc;
    vi.resetModules();
    const { paceGc, PACE_BYTES } = await import('../../src/model/gc-pacer.js');
    expect(PACE_BYTES).toBe(2 * 1024 * 1024);
    for (let i = 0; i < 31; i++) paceGc(64 * 1024);
    expect(gc).not.toHaveBeenCalled();
    paceGc(64 * 1024);
    expect(gc).toHaveBeenCalledTimes(1);
    expect(gc).toHaveBeenCalledWith({ type: 'minor' });
    for (let i = 0; i < 32 * 3; i++) paceGc(64 * 1024);
    expect(gc).toHaveBeenCalledTimes(4);
  });
});
