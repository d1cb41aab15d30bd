import { PassThrough, Writable, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, toAppError } from '../errors/index.js';
import type { IntegrityStage } from './integrity-stage.js';

/**
 * The end of one pipeline that writes into the head of another, with backpressure. Two
 * pipelines instead of one let the reader side fail (pg_restore exits) while the writer side
 * (download → checksum) goes on to its verdict: after `cut()` chunks are dropped, so the
 * checksum still sees every byte and can say whether the artifact itself was corrupt.
 */
class Handoff extends Writable {
  private broken = false;
  private waiting: (() => void) | undefined;

  constructor(private readonly target: Writable) {
    super({ highWaterMark: 64 * 1024 });
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

/**
 * source → checksum → handoff ⇒ head → downstream… as two pipelines. When the downstream side
 * fails (pg_restore, gpg) and `drain` is set, the source is still read to its end so the
 * checksum decides: a corrupt artifact is reported as IntegrityError, not as the symptom it
 * caused. A checksum failure destroys the downstream side (killing pg_restore).
 */
export async function verifiedHandoff(
  source: Readable,
  check: IntegrityStage,
  downstream: (Duplex | Writable)[],
  drain: boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  const head = new PassThrough({ highWaterMark: 64 * 1024 });
  const handoff = new Handoff(head);
  let downError: unknown;
  const down = pipeline([head, ...downstream], { signal }).catch((err: unknown) => {
    downError = err;
    if (drain) handoff.cut();
    else handoff.destroy(err instanceof Error ? err : new Error(String(err)));
  });
  let upError: unknown;
  try {
    await pipeline([source, check, handoff], { signal });
  } catch (err) {
    upError = err;
    head.destroy(err instanceof Error ? err : new Error(String(err)));
  }
  await down;
  if (upError instanceof IntegrityError) {
    if (downError !== undefined && downError !== upError) upError.message += ` (and ${toAppError(downError).message})`;
    throw upError;
  }
  if (downError !== undefined) throw toAppError(downError);
  if (upError !== undefined) throw toAppError(upError);
}
