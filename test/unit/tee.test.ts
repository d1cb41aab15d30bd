import { describe, expect, it } from 'vitest';
import { Tee } from '../../src/pipeline/tee.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A tee whose 'local' branch is read at once and whose 'remote' branch is never read (a stalled upload). */
function stalledTee(afterMs: number) {
  const tee = new Tee([
    { name: 'local', required: true },
    { name: 'remote', required: false, stall: { afterMs, error: () => new Error('remote stalled (test)') } },
  ]);
  tee.branch('local').resume();
  let failedAt: number | undefined;
  const t0 = performance.now();
  tee.branch('remote').on('error', () => {
    failedAt ??= performance.now() - t0;
  });
  // 1 MiB in 64 KiB chunks: the remote branch's 256 KiB buffer fills, the tee waits on it.
  const chunk = Buffer.alloc(64 * 1024, 1);
  const written = (async () => {
    for (let i = 0; i < 16; i++) if (!tee.write(chunk)) await new Promise((r) => tee.once('drain', r));
  })();
  return { tee, written, failedAt: () => failedAt, remoteFailed: () => tee.branches.find((b) => b.name === 'remote')?.failed };
}

describe('Tee stall limit', () => {
  it('drops a branch that holds the others back for its limit, and the others go on', async () => {
    const t = stalledTee(300);
    await t.written;
    expect(t.remoteFailed()?.message).toBe('remote stalled (test)');
    expect(t.failedAt()).toBeGreaterThanOrEqual(290);
    expect(t.failedAt()).toBeLessThan(1000);
  });

  it('a branch whose consumer waits on its server (awaitingServer) is not dropped meanwhile; the limit counts from the end of the wait', async () => {
    const t = stalledTee(300);
    t.tee.awaitingServer('remote', true);
    await sleep(1000);
    // Three limits' worth of waiting on the server.
    expect(t.remoteFailed()).toBeUndefined();
    t.tee.awaitingServer('remote', false);
    const waitEnded = performance.now();
    await t.written;
    const after = performance.now() - waitEnded;
    expect(t.remoteFailed()?.message).toBe('remote stalled (test)');
    expect(t.failedAt()).toBeGreaterThanOrEqual(1000 + 290);
    expect(after).toBeGreaterThanOrEqual(290);
    expect(after).toBeLessThan(1000);
  });
});
