import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { paceGc } from '../model/gc-pacer.js';

/** Passes bytes through unchanged while computing their SHA-256 and count. */
export class HashStage extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  private digest: string | undefined;

  constructor(private readonly onBytes?: (total: number) => void) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    paceGc(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    callback();
  }

  /** The hex SHA-256 of everything that passed; only after the stream finished. */
  get sha256(): string {
    if (!this.digest) throw new Error('HashStage: stream not finished');
    return this.digest;
  }
}
