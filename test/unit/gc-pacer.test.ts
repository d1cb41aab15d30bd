import { afterEach, describe, expect, it, vi } from 'vitest';

const MiB = 1024 * 1024;

describe('paceGc', () => {
  afterEach(() => {
    delete (globalThis as { gc?: unknown }).gc;
    vi.resetModules();
  });

  async function load() {
    const gc = vi.fn();
    (globalThis as { gc?: unknown }).gc = gc;
    vi.resetModules();
    const pacer = await import('../../src/model/gc-pacer.js');
    const pass = (bytes: number) => {
      for (let i = 0; i < bytes / (64 * 1024); i++) pacer.paceGc(64 * 1024);
    };
    const minors = () => gc.mock.calls.filter(([o]) => o?.type === 'minor').length;
    // A full GC is gc() without options: gc({ type: 'major' }) is a scavenge in Node 20's V8.
    const fulls = () => gc.mock.calls.filter((args) => args.length === 0).length;
    return { gc, pass, minors, fulls, ...pacer };
  }

  it('with --expose-gc: one minor GC per 2 MiB that passed, none before', async () => {
    const { gc, pass, minors, PACE_BYTES } = await load();
    expect(PACE_BYTES).toBe(2 * MiB);
    pass(2 * MiB - 64 * 1024);
    expect(gc).not.toHaveBeenCalled();
    pass(64 * 1024);
    expect(gc).toHaveBeenCalledTimes(1);
    expect(gc).toHaveBeenCalledWith({ type: 'minor' });
    pass(6 * MiB);
    expect(minors()).toBe(4);
  });

  it('every 128 MiB the paced GC is a full one, in place of the minor one', async () => {
    const { gc, pass, minors, fulls, MAJOR_BYTES } = await load();
    expect(MAJOR_BYTES).toBe(128 * MiB);
    pass(126 * MiB);
    expect([minors(), fulls()]).toEqual([63, 0]);
    pass(2 * MiB);
    expect([minors(), fulls()]).toEqual([63, 1]);
    expect(gc.mock.lastCall).toEqual([]);
    pass(3 * 128 * MiB);
    expect([minors(), fulls()]).toEqual([63 + 3 * 63, 4]);
  });

  it('without --expose-gc: nothing', async () => {
    vi.resetModules();
    const { paceGc } = await import('../../src/model/gc-pacer.js');
    expect(() => {
      for (let i = 0; i < 4096; i++) paceGc(64 * 1024);
    }).not.toThrow();
  });
});
