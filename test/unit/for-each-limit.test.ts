import { describe, expect, it } from 'vitest';
import { forEachLimit } from '../../src/model/for-each-limit.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('forEachLimit', () => {
  it('runs every item in order, at most `limit` at once', async () => {
    const started: number[] = [];
    let running = 0;
    let most = 0;
    await forEachLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      started.push(n);
      most = Math.max(most, ++running);
      await tick();
      running--;
    });
    expect(started).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(most).toBe(3);
  });

  it('after a failure: no new item starts, the others are told to stop, and it rejects only once they settled', async () => {
    const started: number[] = [];
    const settled: number[] = [];
    const failure = new Error('item 2 failed');
    let abortedWith: unknown;
    const run = forEachLimit([1, 2, 3, 4, 5], 2, async (n, signal) => {
      started.push(n);
      if (n === 2) throw failure;
      // Item 1 is still at work when 2 fails: it sees the abort, and ends a little later.
      await new Promise<void>((resolve) =>
        signal.addEventListener('abort', () => {
          abortedWith = signal.reason;
          setTimeout(() => {
            settled.push(n);
            resolve();
          }, 20);
        }),
      );
    });
    await expect(run).rejects.toBe(failure);
    expect(started).toEqual([1, 2]);
    expect(settled).toEqual([1]);
    expect(abortedWith).toBe(failure);
  });

  it('the first failure wins when the items still running fail too', async () => {
    const first = new Error('first');
    const run = forEachLimit([1, 2, 3], 3, async (n, signal) => {
      if (n === 1) throw first;
      await new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error(`item ${n} stopped`))));
    });
    await expect(run).rejects.toBe(first);
  });

  it("the caller's signal is part of the one fn gets", async () => {
    const outer = new AbortController();
    const seen: boolean[] = [];
    await forEachLimit(
      [1, 2],
      1,
      async (n, signal) => {
        if (n === 1) outer.abort(new Error('caller stopped'));
        seen.push(signal.aborted);
      },
      outer.signal,
    );
    expect(seen).toEqual([true, true]);
  });
});
