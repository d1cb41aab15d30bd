import { Writable } from 'node:stream';

/**
 * The end of one pipeline that writes into the head of another, with backpressure. Two
 * pipelines instead of one let the reader side fail (pg_restore exits) while the writer side
 * (download → checksum) goes on to its verdict: after `cut()` chunks are dropped, so the
 * checksum still sees every byte and can say whether the artifact itself was corrupt.
 */
export class Handoff extends Writable {
  private broken = false;
  private waiting: (() => void) | undefined;

  constructor(private readonly target: Writable) {
    super({ highWaterMark: 1024 * 1024 });
    target.on('close', () => this.cut());
  }

  /** Stop forwarding: later chunks are read and dropped. */
  cut(): void {
    this.broken = true;
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.broken || this.target.destroyed) return callback();
    if (this.target.write(chunk)) return callback();
    const done = () => {
      this.target.off('drain', done);
      this.waiting = undefined;
      callback();
    };
    this.waiting = done;
    this.target.once('drain', done);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.broken && !this.target.destroyed) this.target.end();
    callback();
  }
}
