import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError } from '../../src/errors/index.js';
import { FileSpool } from '../../src/storage/file-spool.js';
import type { PutResult, StorageBackend, StoredObject } from '../../src/storage/storage-backend.js';
import { tempDir, uniqueId } from '../helpers/services.js';

export const MiB = 1024 * 1024;

export interface TestSourceOptions {
  /** Bytes per pushed chunk (default 64 KiB). */
  readonly chunkSize?: number;
  /** Stop producing after this many bytes until `release()` is called (a stalled producer). */
  readonly pauseAt?: number;
  /** Fail with `failure` once this many bytes were produced (a dump that dies half-way). */
  readonly failAt?: number;
}

/**
 * A readable of `total` random bytes in small chunks that records its sha256, and can stall or
 * fail part-way. Its `_read` never blocks, so destroying it while it is stalled works (unlike an
 * async generator awaiting a promise).
 */
export class TestSource extends Readable {
  served = 0;
  readonly failure = new Error('source failed half-way (test)');
  /** Resolves when the source stalled at `pauseAt` (the consumer has read that much). */
  readonly stalled: Promise<void>;
  private readonly hash = createHash('sha256');
  private released = false;
  private waiting = false;
  private onStalled!: () => void;

  constructor(
    readonly total: number,
    private readonly options: TestSourceOptions = {},
  ) {
    super({ highWaterMark: 64 * 1024 });
    this.stalled = new Promise((resolve) => (this.onStalled = resolve));
  }

  /** sha256 (hex) of everything produced; final once the source ended. */
  digest(): string {
    return this.hash.copy().digest('hex');
  }

  release(): void {
    this.released = true;
    if (this.waiting) {
      this.waiting = false;
      this._read();
    }
  }

  override _read(): void {
    const { pauseAt, failAt, chunkSize = 64 * 1024 } = this.options;
    if (pauseAt !== undefined && this.served >= pauseAt && !this.released) {
      this.waiting = true;
      this.onStalled();
      return;
    }
    if (failAt !== undefined && this.served >= failAt) {
      this.destroy(this.failure);
      return;
    }
    if (this.served >= this.total) {
      this.push(null);
      return;
    }
    const limits = [chunkSize, this.total - this.served];
    for (const mark of [pauseAt, failAt]) if (mark !== undefined && mark > this.served) limits.push(mark - this.served);
    const chunk = randomBytes(Math.min(...limits));
    this.served += chunk.length;
    this.hash.update(chunk);
    this.push(chunk);
  }
}

export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * A put whose local copy (a FileSpool over a temp file) holds `file` while its body streams `body`:
 * an upload reads its parts back from the file, so where the two differ the read-back differs.
 */
export async function putWithSpool(backend: StorageBackend, key: string, body: Buffer, file: Buffer): Promise<PutResult> {
  const path = join(tempDir(), 'spool');
  writeFileSync(path, file);
  const spool = new FileSpool();
  spool.onWritten(path, file.length);
  try {
    return await backend.put(key, Readable.from([body]), { spool });
  } finally {
    spool.close();
  }
}

export async function textOf(stream: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

export async function collect(iterable: AsyncIterable<StoredObject>): Promise<StoredObject[]> {
  const out: StoredObject[] = [];
  for await (const object of iterable) out.push(object);
  return out;
}

export async function keysOf(backend: StorageBackend, prefix: string): Promise<string[]> {
  return (await collect(backend.list(prefix))).map((o) => o.key).sort();
}

/** Run `fn` over `items` with at most `limit` at a time. */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * The storage contract (src/storage/storage-backend.ts) as one suite that every backend runs.
 * `make` is called once; every test works under its own random key prefix.
 */
export function runStorageContract(name: string, make: () => Promise<StorageBackend>): void {
  describe(`storage contract: ${name}`, () => {
    let backend: StorageBackend;
    let base: string;
    beforeAll(async () => {
      backend = await make();
    });
    const fresh = () => (base = `contract-${uniqueId()}/`);
    const putText = (key: string, text: string) => backend.put(key, Readable.from([Buffer.from(text)]));

    it('round-trips a 13 MiB stream written in 64 KiB chunks (sha256) and stat reports its size', async () => {
      fresh();
      const key = `${base}big.dump`;
      const source = new TestSource(13 * MiB + 12_345);
      const before = Date.now();
      const result = await backend.put(key, source);
      expect(result).toEqual({ key, size: source.total });
      expect(await sha256Of(await backend.get(key))).toBe(source.digest());
      const info = await backend.stat(key);
      expect(info?.key).toBe(key);
      expect(info?.size).toBe(source.total);
      expect(Math.abs(info!.modified.getTime() - before)).toBeLessThan(5 * 60_000);
    });

    it('replaces an existing object on put', async () => {
      fresh();
      expect(await putText(`${base}k`, 'first version')).toEqual({ key: `${base}k`, size: 13 });
      expect(await putText(`${base}k`, 'second')).toEqual({ key: `${base}k`, size: 6 });
      expect(await textOf(await backend.get(`${base}k`))).toBe('second');
      expect((await backend.stat(`${base}k`))?.size).toBe(6);
      expect(await keysOf(backend, base)).toEqual([`${base}k`]);
    });

    it('a create-only put (ifNoneMatch) writes a new key, refuses an existing one with ConflictError and leaves it intact', async () => {
      fresh();
      const key = `${base}claim.run.json`;
      const create = (text: string) =>
        backend.put(key, Readable.from([Buffer.from(text)]), { contentLength: Buffer.byteLength(text), ifNoneMatch: true });
      expect(await create('first writer')).toEqual({ key, size: 12 });
      const err = await create('second writer').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as Error).message).toContain('claim.run.json');
      expect(await textOf(await backend.get(key))).toBe('first writer');
      expect(await keysOf(backend, base)).toEqual([key]);
      // Two writers at the same moment: exactly one wins.
      const race = await Promise.allSettled([create('a'), create('b')].map((p) => p));
      expect(race.every((r) => r.status === 'rejected')).toBe(true);
      const key2 = `${base}race.run.json`;
      const both = await Promise.allSettled(
        ['a', 'b'].map((t) => backend.put(key2, Readable.from([Buffer.from(t)]), { contentLength: 1, ifNoneMatch: true })),
      );
      expect(both.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(both.filter((r) => r.status === 'rejected' && r.reason instanceof ConflictError)).toHaveLength(1);
    });

    it('get of a missing key rejects with NotFoundError naming the key; stat returns undefined', async () => {
      fresh();
      const key = `${base}missing.dump`;
      const err = await backend.get(key).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as NotFoundError).code).toBe('not-found');
      expect((err as Error).message).toContain(key);
      expect(await backend.stat(key)).toBeUndefined();
      expect(await backend.stat(`${base}no/such/dir/x`)).toBeUndefined();
    });

    it('an interrupted put (body errors half-way) rejects with the body error and leaves nothing new', async () => {
      fresh();
      await putText(`${base}existing.dump`, 'earlier backup');
      for (const key of [`${base}existing.dump`, `${base}new.dump`]) {
        const source = new TestSource(13 * MiB, { failAt: 7 * MiB });
        await expect(backend.put(key, source)).rejects.toBe(source.failure);
        expect(source.served).toBe(7 * MiB);
      }
      expect(await backend.stat(`${base}new.dump`)).toBeUndefined();
      expect((await backend.stat(`${base}existing.dump`))?.size).toBe('earlier backup'.length);
      expect(await textOf(await backend.get(`${base}existing.dump`))).toBe('earlier backup');
      expect(await keysOf(backend, base)).toEqual([`${base}existing.dump`]);
    });

    it('an aborted put (AbortSignal, stalled producer) rejects with the reason and leaves nothing new', async () => {
      fresh();
      await putText(`${base}existing.dump`, 'earlier backup');
      for (const key of [`${base}existing.dump`, `${base}new.dump`]) {
        const source = new TestSource(13 * MiB, { pauseAt: 7 * MiB });
        const controller = new AbortController();
        const put = backend.put(key, source, { signal: controller.signal });
        const outcome = put.then(
          () => 'resolved',
          (e: unknown) => e,
        );
        await source.stalled;
        const reason = new Error('stop (test)');
        controller.abort(reason);
        expect(await outcome).toBe(reason);
        expect(source.destroyed).toBe(true);
      }
      expect(await backend.stat(`${base}new.dump`)).toBeUndefined();
      expect(await textOf(await backend.get(`${base}existing.dump`))).toBe('earlier backup');
      expect(await keysOf(backend, base)).toEqual([`${base}existing.dump`]);
    });

    it('a put whose signal is already aborted rejects and writes nothing', async () => {
      fresh();
      const reason = new Error('aborted before start (test)');
      await expect(backend.put(`${base}x`, new TestSource(MiB), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
      expect(await keysOf(backend, base)).toEqual([]);
    });

    it('lists more than 1000 keys (pagination hidden) and filters by prefix', async () => {
      fresh();
      const keys = Array.from({ length: 1050 }, (_, i) => `${base}${i < 525 ? 'a' : 'b'}/${String(i).padStart(4, '0')}.dump`);
      await mapLimit(keys, 16, (key) => putText(key, key));
      const all = await collect(backend.list(base));
      expect(all.map((o) => o.key).sort()).toEqual(keys);
      for (const o of all.slice(0, 5)) expect(o.size).toBe(Buffer.byteLength(o.key));
      expect(await keysOf(backend, `${base}a/`)).toEqual(keys.slice(0, 525));
      expect(await keysOf(backend, `${base}b/`)).toEqual(keys.slice(525));
      expect(await keysOf(backend, `${base}a/00`)).toEqual(keys.slice(0, 100));
      expect(await keysOf(backend, `${base}c/`)).toEqual([]);
    });

    it('keys with spaces and non-ASCII characters round-trip, list and delete', async () => {
      fresh();
      const keys = [`${base}dir/ünïcödé name ☃.dump`, `${base}dir/a+b %20 (1)&=.dump`];
      for (const key of keys) await putText(key, `content of ${key}`);
      expect(await keysOf(backend, base)).toEqual([...keys].sort());
      expect(await keysOf(backend, `${base}dir/ü`)).toEqual([keys[0]]);
      for (const key of keys) {
        expect(await textOf(await backend.get(key))).toBe(`content of ${key}`);
        expect((await backend.stat(key))?.size).toBe(Buffer.byteLength(`content of ${key}`));
        await backend.delete(key);
      }
      expect(await keysOf(backend, base)).toEqual([]);
    });

    it('delete removes the object and is idempotent', async () => {
      fresh();
      await putText(`${base}gone.dump`, 'x');
      await putText(`${base}kept.dump`, 'y');
      await backend.delete(`${base}gone.dump`);
      expect(await backend.stat(`${base}gone.dump`)).toBeUndefined();
      await expect(backend.get(`${base}gone.dump`)).rejects.toBeInstanceOf(NotFoundError);
      await backend.delete(`${base}gone.dump`);
      await backend.delete(`${base}never/existed.dump`);
      expect(await keysOf(backend, base)).toEqual([`${base}kept.dump`]);
    });

    it('while a put is in flight, neither the key nor any temporary object is visible', async () => {
      fresh();
      await putText(`${base}other.dump`, 'other');
      const source = new TestSource(9 * MiB, { pauseAt: 6 * MiB });
      const put = backend.put(`${base}inflight.dump`, source);
      await source.stalled;
      expect(await keysOf(backend, base)).toEqual([`${base}other.dump`]);
      expect(await keysOf(backend, '')).not.toContain(`${base}inflight.dump`);
      expect(await backend.stat(`${base}inflight.dump`)).toBeUndefined();
      source.release();
      expect((await put).size).toBe(9 * MiB);
      expect(await keysOf(backend, base)).toEqual([`${base}inflight.dump`, `${base}other.dump`]);
      expect(await sha256Of(await backend.get(`${base}inflight.dump`))).toBe(source.digest());
    });

    it('localPath is undefined, or the path of a file holding exactly the stored bytes', async () => {
      fresh();
      const key = `${base}sub dir/pathed.dump`;
      await putText(key, 'on disk or not');
      const path = backend.localPath(key);
      if (path === undefined) {
        expect(backend.kind).not.toBe('local');
      } else {
        expect(backend.kind).toBe('local');
        expect(await readFile(path, 'utf8')).toBe('on disk or not');
      }
    });

    it('checkAccess resolves on a working backend', async () => {
      await expect(backend.checkAccess()).resolves.toBeUndefined();
    });
  });
}
