import { Readable } from 'node:stream';
import { AppError, ConflictError, NotFoundError } from '../errors/index.js';
import type { PutOptions, PutResult, StorageBackend, StoredObject } from './storage-backend.js';

interface MemoryObject {
  readonly data: Buffer;
  readonly modified: Date;
}

/**
 * Keeps objects in memory, for tests and for callers that need a backend without a disk or a
 * bucket. Keeps the whole storage contract: a put becomes visible only once its body has ended
 * (a failed or aborted put leaves nothing), create-only puts are decided atomically.
 */
export class MemoryBackend implements StorageBackend {
  readonly kind = 'memory' as const;
  readonly location: string;
  private readonly objects = new Map<string, MemoryObject>();

  constructor(name = 'memory') {
    this.location = `memory://${name}/`;
  }

  urlOf(key: string): string {
    return this.location + key;
  }

  /** Objects in memory have no path on this host. */
  localPath(_key: string): undefined {
    return undefined;
  }

  /** Memory is always there. */
  async checkAccess(): Promise<void> {}

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<PutResult> {
    checkKey(key);
    const { signal } = options;
    if (signal?.aborted) {
      body.destroy();
      throw signal.reason;
    }
    if (options.ifNoneMatch && this.objects.has(key)) {
      body.destroy();
      throw new ConflictError(`${this.urlOf(key)} already exists`);
    }
    const onAbort = () => body.destroy(signal!.reason instanceof Error ? signal!.reason : new Error('put aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of body) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    } catch (err) {
      if (!body.destroyed) body.destroy();
      throw signal?.aborted ? signal.reason : err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (signal?.aborted) throw signal.reason;
    if (options.ifNoneMatch && this.objects.has(key)) throw new ConflictError(`${this.urlOf(key)} already exists`);
    const data = Buffer.concat(chunks);
    this.objects.set(key, { data, modified: new Date() });
    return { key, size: data.length };
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const o = this.objects.get(key);
    if (!o) throw new NotFoundError(`not found: ${key} (in ${this.location})`);
    return Readable.from([o.data], options.signal ? { signal: options.signal } : {});
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    const o = this.objects.get(key);
    return o ? { key, size: o.data.length, modified: o.modified } : undefined;
  }

  /** Every object whose key starts with `prefix`, in key order. */
  async *list(prefix = ''): AsyncIterable<StoredObject> {
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const key of keys) {
      const o = this.objects.get(key);
      if (o) yield { key, size: o.data.length, modified: o.modified };
    }
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

/** The keys every backend accepts: relative "/"-separated names without empty, "." or ".." segments. */
function checkKey(key: string): void {
  if (!key || key.includes('\0') || key.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new AppError('invalid-key', `invalid storage key "${key}": use relative "/"-separated names without "." or ".." segments`);
  }
}
