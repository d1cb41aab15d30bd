import { createHash, randomBytes } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../src/errors/index.js';
import { IntegrityStage, mismatch } from '../../src/pipeline/integrity-stage.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Feed `data` in `chunk`-sized pieces; record how much had come out after each write. */
async function feed(data: Buffer, expected: { size: number; sha256: string }, holdBack: number, chunk = 400) {
  const stage = new IntegrityStage({ label: 'x.dump', ...expected }, { holdBack });
  const out: Buffer[] = [];
  let received = 0;
  stage.on('data', (b: Buffer) => {
    out.push(b);
    received += b.length;
  });
  const seen: { written: number; received: number }[] = [];
  let error: unknown;
  stage.on('error', (e) => (error = e));
  for (let i = 0; i < data.length; i += chunk) {
    stage.write(data.subarray(i, i + chunk));
    await new Promise((r) => setImmediate(r));
    seen.push({ written: Math.min(i + chunk, data.length), received });
  }
  const receivedBeforeEnd = received;
  stage.end();
  await finished(stage).catch(() => undefined);
  return { out: Buffer.concat(out), seen, receivedBeforeEnd, error, verified: stage.verified };
}

describe('IntegrityStage', () => {
  const data = randomBytes(10_000);
  const good = { size: data.length, sha256: sha(data) };

  it('passes every byte through unchanged once the digest matched, holding the tail back until then', async () => {
    const r = await feed(data, good, 1000);
    expect(r.error).toBeUndefined();
    expect(r.verified).toBe(true);
    expect(r.out.equals(data)).toBe(true);
    for (const s of r.seen) expect(s.received).toBeLessThanOrEqual(Math.max(0, s.written - 1000));
    expect(r.receivedBeforeEnd).toBeLessThanOrEqual(data.length - 1000);
    expect(r.receivedBeforeEnd).toBeGreaterThan(0);
  });

  it('on a sha256 mismatch the held tail never reaches the consumer', async () => {
    const bad = Buffer.from(data);
    bad[9_990] = bad[9_990]! ^ 1;
    const r = await feed(bad, good, 1000);
    expect(r.error).toBeInstanceOf(IntegrityError);
    expect((r.error as Error).message).toMatch(/sha256 [0-9a-f]{64} differs from the manifest's/);
    expect(r.out.length).toBeLessThanOrEqual(data.length - 1000);
    expect(r.verified).toBe(false);
  });

  it('a truncated input fails at its end, a longer one at once', async () => {
    const short = await feed(data.subarray(0, 9_000), good, 1000);
    expect(short.error).toBeInstanceOf(IntegrityError);
    expect((short.error as Error).message).toBe('x.dump is 9000 bytes, its manifest records 10000 (truncated)');
    const long = await feed(Buffer.concat([data, Buffer.alloc(500)]), good, 1000);
    expect((long.error as Error).message).toMatch(/larger than the 10000 bytes/);
    expect(long.out.length).toBeLessThanOrEqual(data.length - 1000);
  });

  it('mismatch() names the difference', () => {
    expect(mismatch({ label: 'a', ...good }, 10_000, good.sha256)).toBeUndefined();
    expect(mismatch({ label: 'a', ...good }, 10_001, good.sha256)).toBe('a is 10001 bytes, its manifest records 10000');
  });
});
